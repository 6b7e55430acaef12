from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = "Surveys"

    def ready(self) -> None:
        from supportdesk import events, extensions
        from surveys import panels, seed, selectors
        from surveys.services.policy import survey_inline_path
        from tickets.inline import inline_frame_register

        events.subscribe("conversation.solved", "surveys.tasks.survey_schedule_task")
        events.subscribe("message.inbound", "surveys.tasks.survey_cancel_for_inbound_task")
        events.subscribe("identity.undeliverable", "surveys.tasks.survey_mark_bounced_task")
        events.subscribe("conversation.spam_marked", "surveys.tasks.surveys_cancel_for_spam_task")
        events.subscribe("customer.merged", "surveys.tasks.surveys_customer_merged_task")
        events.subscribe("customer.merge_undone", "surveys.tasks.surveys_customer_merged_task")
        extensions.register_annotator("conversation.outcome", selectors.conversation_outcomes)
        extensions.register_panel("conversation.sidebar", panels.conversation_sidebar)
        extensions.register_panel("agent.home", panels.agent_home)
        extensions.register_nav("My feedback", "surveys:my_feedback", order=39, more=True)
        extensions.register_nav("Survey responses", "surveys:responses", order=40, more=True)
        extensions.register_nav(
            "Follow-ups", "surveys:follow_ups", roles={"manager", "admin"}, order=41
        )
        extensions.register_settings_page(
            "Survey settings",
            "surveys:settings",
            "When surveys go out, how often a customer is asked, reminders, NPS.",
            order=30,
        )
        extensions.register_settings_page(
            "Survey page wording",
            "surveys:wording",
            "The questions customers read, per language.",
            order=35,
        )
        extensions.register_seeder("surveys", seed.seed_surveys)
        from surveys.services import privacy

        extensions.register_eraser("surveys", privacy.surveys_erase)
        extensions.register_exporter("surveys", privacy.surveys_export)
        inline_frame_register("survey", survey_inline_path)
