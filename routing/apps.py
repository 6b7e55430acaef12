from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Hours, promises and routing"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from routing import panels, services
        from supportdesk import extensions
        from supportdesk.models import Team

        extensions.register_hook("conversation.inbound", services.inbound_hook)
        extensions.register_hook("conversation.reopened", services.reopened_hook)
        extensions.register_hook("conversation.priority_changed", services.priority_hook)
        extensions.register_annotator("conversation.promise", panels.promise_texts)
        extensions.register_panel("agent.home", panels.availability_home)
        extensions.register_panel("conversation.sidebar", panels.conversation_due)
        extensions.register_nav(
            "Availability", "routing:availability", roles={"manager", "admin"}, order=45, more=True
        )
        extensions.register_nav(
            "Hours & promises", "routing:hours", roles={"manager", "admin"}, order=46, more=True
        )
        extensions.register_nav(
            "Rules", "routing:rules", roles={"manager", "admin"}, order=47, more=True
        )
        extensions.register_settings_page(
            "Hours and promises",
            "routing:hours",
            "Opening hours, holidays and the reply times promised to customers; team routing.",
            order=30,
        )
        extensions.register_settings_page(
            "Rules",
            "routing:rules",
            "Ordered rules that set team, tags, priority or assignee, with a dry run.",
            order=35,
        )
        post_save.connect(services.team_created, sender=Team, dispatch_uid="routing.team_created")
