from django.apps import AppConfig


class QualityConfig(AppConfig):
    """QA reviews, calibration and disputes; customer ideas; cancellations; check-ins; the pulse."""

    name = "quality"
    verbose_name = "Quality"

    def ready(self) -> None:
        from quality import panels

        panels.register()
