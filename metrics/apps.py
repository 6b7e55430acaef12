from django.apps import AppConfig

# Domain events that change daily facts. "survey.answered" is the surveys app's own kind (its
# event_id is the solve's). Messages, survey sends and bounces and QA reviews are found
# by beat's watermark (metrics.services.facts_mark_dirty_from_sources).
FACT_EVENTS = (
    "survey.answered",
    "conversation.solved",
    "conversation.reopened",
    "message.moved",
    "customer.merged",
    "customer.merge_undone",
    # Outcomes by topic follow a conversation's tags; spam leaves (and re-enters) every figure.
    "conversation.tags_changed",
    "conversation.spam_marked",
    "conversation.spam_unmarked",
)


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self) -> None:
        from supportdesk import events, extensions

        for kind in FACT_EVENTS:
            events.subscribe(kind, "metrics.tasks.facts_mark_dirty_task")
        extensions.register_nav(
            "Dashboard", "metrics:dashboard", roles={"manager", "admin"}, order=20
        )
        extensions.register_nav("My scorecard", "metrics:my_scorecard", roles={"agent"}, order=20)

        # Scorecard facts are computed from everything seeded before, QA reviews included: last.
        from metrics.services import facts_seed

        extensions.register_seeder("metrics facts", facts_seed)
