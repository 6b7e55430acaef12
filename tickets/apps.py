from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from supportdesk import extensions
        from tickets import receivers  # noqa: F401  (anymail's inbound signal)

        extensions.register_nav("Tags", "workspace:tags", order=90, more=True)
