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
        for label, url_name, description, order in (
            ("Mailboxes", "mailboxes", "Connect mailboxes, test and poll them.", 20),
            (
                "Sending settings",
                "workspace:sending",
                "Each mailbox's From name, signature and acknowledgement.",
                25,
            ),
            (
                "Saved replies and macros",
                "workspace:saved-replies",
                "Replies agents insert, and what they set in one click.",
                40,
            ),
            ("Tags", "workspace:tags", "Create, rename and archive tags.", 45),
            (
                "Channels and chat widget",
                "workspace:channel-widgets",
                "Survey switch, webhook URL, secret rotation and the chat widget's sites.",
                15,
            ),
            (
                "Retention",
                "workspace:retention",
                "How long raw mail and attachments are kept; anonymising closed conversations.",
                80,
            ),
        ):
            extensions.register_settings_page(label, url_name, description, order=order)
