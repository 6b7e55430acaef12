from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from tickets import receivers  # noqa: F401  (anymail's inbound signal)
        from supportdesk import extensions

        extensions.register_nav(
            "Sending settings", "workspace:sending", roles={"admin"}, order=97, more=True
        )
