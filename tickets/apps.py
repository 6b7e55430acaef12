from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from supportdesk import extensions
        from tickets import receivers  # noqa: F401  (anymail's inbound signal)

        extensions.register_nav(
            "Sending settings", "workspace:sending", roles={"admin"}, order=97, more=True
        )
        extensions.register_nav(
            "Channels and chat widget",
            "workspace:channel-widgets",
            roles={"admin"},
            order=98,
            more=True,
        )
