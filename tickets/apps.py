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
        extensions.register_nav("Mailboxes", "mailboxes", roles={"admin"}, order=90, more=True)
        extensions.register_nav("Customers", "workspace:customers", order=10)
        # In "More": the top bar must fit 1,280 px; the customer pages carry the button too.
        extensions.register_nav(
            "New conversation", "workspace:conversation-new", order=11, more=True
        )
        extensions.register_nav("Tags", "workspace:tags", order=90, more=True)
        extensions.register_nav(
            "Retention", "workspace:retention", roles={"admin"}, order=95, more=True
        )
        extensions.register_nav(
            "Channels and chat widget",
            "workspace:channel-widgets",
            roles={"admin"},
            order=98,
            more=True,
        )
