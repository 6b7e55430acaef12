"""Admin: survey settings (through the service) and the survey records, read-only.

Closing a follow-up is an admin action calling surveys.services.follow_up_close, so it is
recorded as the page records it.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from supportdesk.admin import ModelAdmin, ReadOnlyAdmin
from supportdesk.errors import ApplicationError
from supportdesk.http import staff_user
from surveys.models import FollowUp, Survey, SurveyResponse, SurveySettings, SurveyUnsubscribe
from surveys.services import follow_up_close, survey_settings_update

SETTINGS_FIELDS = (
    "delay_minutes",
    "min_days_between",
    "window_days",
    "reminder_days",
    "reminders_enabled",
    "channels",
    "sampling_rate",
    "nps_interval_days",
)


@admin.register(SurveySettings)
class SurveySettingsAdmin(ModelAdmin[SurveySettings]):
    fields = SETTINGS_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SurveySettings.objects.exists()

    def has_delete_permission(
        self, request: HttpRequest, obj: SurveySettings | None = None
    ) -> bool:
        return False

    def save_model(
        self,
        request: HttpRequest,
        obj: SurveySettings,
        form: forms.ModelForm[SurveySettings],
        change: bool,
    ) -> None:
        # The one home for this write (surveys.services), so the admin and code validate alike.
        row = survey_settings_update(
            actor=staff_user(request), **{name: form.cleaned_data[name] for name in SETTINGS_FIELDS}
        )
        obj.pk = row.pk


@admin.register(Survey)
class SurveyAdmin(ReadOnlyAdmin[Survey]):
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


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ReadOnlyAdmin[SurveyResponse]):
    list_display = ["id", "survey", "resolved", "csat", "nps", "shout_out", "answered_at"]
    list_filter = ["resolved", "csat", "shout_out"]
    list_select_related = ["survey"]


@admin.register(SurveyUnsubscribe)
class SurveyUnsubscribeAdmin(ReadOnlyAdmin[SurveyUnsubscribe]):
    list_display = ["email", "customer", "created_at"]
    search_fields = ["email"]


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdmin[FollowUp]):
    list_display = ["id", "survey", "team", "assignee", "reason", "status", "created_at"]
    list_filter = ["status", "reason"]
    list_select_related = ["survey", "team", "assignee"]
    actions = ["close"]

    @admin.action(description="Close (as you)")
    def close(self, request: HttpRequest, queryset: QuerySet[FollowUp]) -> None:
        actor = staff_user(request)
        closed = 0
        for follow_up in queryset:
            try:
                follow_up_close(follow_up=follow_up, actor=actor)
            except ApplicationError as exc:
                self.message_user(request, f"#{follow_up.pk}: {exc.message}", messages.ERROR)
            else:
                closed += 1
        if closed:
            self.message_user(request, f"Closed: {closed}.", messages.SUCCESS)
