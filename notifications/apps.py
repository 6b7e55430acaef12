from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from supportdesk import events

        # What happened on a conversation that one member of staff should hear about at once.
        for kind in ("message.inbound", "conversation.assigned", "conversation.reopened"):
            events.subscribe(kind, "notifications.tasks.notifications_for_event_task")
        events.subscribe("message.note", "notifications.tasks.notifications_for_event_task")
