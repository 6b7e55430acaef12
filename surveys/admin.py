"""Admin: survey settings (delays, throttle, channels, sampling) and read-mostly survey records."""

from django.contrib import admin

from surveys.models import FollowUp, Survey, SurveyResponse, SurveySettings, SurveyUnsubscribe
from surveys.services import survey_settings_update


@admin.register(SurveySettings)
class SurveySettingsAdmin(admin.ModelAdmin):
    fields = [
        "delay_minutes",
        "min_days_between",
        "window_days",
        "reminder_days",
        "reminders_enabled",
        "channels",
        "sampling_rate",
        "nps_interval_days",
    ]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return not SurveySettings.objects.exists()

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        # The one home for this write (surveys.services), so the admin and code validate alike.
        row = survey_settings_update(
            actor=request.user, **{name: form.cleaned_data[name] for name in self.fields}
        )
        obj.pk = row.pk


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "conversation",
        "customer",
        "agent",
        "status",
        "skip_reason",
        "due_at",
        "sent_at",
    ]
    list_filter = ["status", "skip_reason", "channel_kind"]
    list_select_related = ["conversation", "customer", "agent"]
    search_fields = ["email", "conversation__subject"]
    readonly_fields = [field.name for field in Survey._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(SurveyResponse)
class SurveyResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "survey", "resolved", "csat", "nps", "shout_out", "answered_at"]
    list_filter = ["resolved", "csat", "shout_out"]
    list_select_related = ["survey"]
    readonly_fields = [field.name for field in SurveyResponse._meta.fields]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False


@admin.register(SurveyUnsubscribe)
class SurveyUnsubscribeAdmin(admin.ModelAdmin):
    list_display = ["email", "customer", "created_at"]
    search_fields = ["email"]
    raw_id_fields = ["customer", "survey"]


@admin.register(FollowUp)
class FollowUpAdmin(admin.ModelAdmin):
    list_display = ["id", "survey", "team", "assignee", "reason", "status", "created_at"]
    list_filter = ["status", "reason"]
    raw_id_fields = ["survey", "assignee", "closed_by"]
