from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        # --- QA, ideas, cancellations, check-ins, pulse (issue 6)
        from metrics import panels_qa

        panels_qa.register()
