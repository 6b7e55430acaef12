"""The survey settings page (admins): when surveys go out and how often a customer is asked.

Saved through ``surveys.services.survey_settings_update`` (validated, audited with what
changed); an empty number means "the environment's default" (``SURVEY_*`` settings).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from supportdesk.http import StaffRequest
from surveys.models import SurveySettings
from surveys.services import survey_policy, survey_settings_update

CHANNEL_CHOICES = [("email", "Email"), ("chat", "Chat"), ("social", "Social"), ("phone", "Phone")]


def _default(setting: str, unit: str) -> str:
    return f"Empty: the default, {getattr(settings, setting)} {unit}."


class SurveySettingsForm(forms.Form):
    delay_minutes = forms.IntegerField(
        min_value=0,
        max_value=60 * 24 * 14,
        required=False,
        label="Minutes after a solve before the survey goes out",
        help_text=_default("SURVEY_DELAY_MINUTES", "minutes"),
    )
    min_days_between = forms.IntegerField(
        min_value=0,
        max_value=365,
        required=False,
        label="Days between two surveys to the same customer (at least)",
        help_text=_default("SURVEY_MIN_DAYS_BETWEEN", "days"),
    )
    window_days = forms.IntegerField(
        min_value=1,
        max_value=365,
        required=False,
        label="Days a survey link stays valid",
        help_text=_default("SURVEY_WINDOW_DAYS", "days"),
    )
    reminder_days = forms.IntegerField(
        min_value=1,
        max_value=90,
        required=False,
        label="Days without an answer before the single reminder",
        help_text=_default("SURVEY_REMINDER_DAYS", "days"),
    )
    reminders_enabled = forms.BooleanField(required=False, label="Send the single reminder")
    channels = forms.MultipleChoiceField(
        choices=CHANNEL_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Survey solves whose last contact was on (none ticked: every channel)",
    )
    sampling_percent = forms.IntegerField(
        min_value=0,
        max_value=100,
        label="Share of eligible solves that get a survey (%)",
        help_text="100: every one. Lower it to ask fewer customers.",
    )
    nps_interval_days = forms.IntegerField(
        min_value=1,
        max_value=3650,
        label="Ask the NPS question of a customer at most every (days)",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        window, reminder = data.get("window_days"), data.get("reminder_days")
        window = window if window is not None else settings.SURVEY_WINDOW_DAYS
        reminder = reminder if reminder is not None else settings.SURVEY_REMINDER_DAYS
        if data.get("reminders_enabled") and reminder >= window:
            raise ValidationError(
                "The reminder must go out before the link expires: fewer reminder days than "
                "days the link stays valid."
            )
        return data


def _initial(row: SurveySettings) -> dict[str, Any]:
    return {
        "delay_minutes": row.delay_minutes,
        "min_days_between": row.min_days_between,
        "window_days": row.window_days,
        "reminder_days": row.reminder_days,
        "reminders_enabled": row.reminders_enabled,
        "channels": list(row.channels or []),
        "sampling_percent": round(row.sampling_rate * 100),
        "nps_interval_days": row.nps_interval_days,
    }


def _page(request: StaffRequest, form: SurveySettingsForm, *, status: int = 200) -> HttpResponse:
    policy = survey_policy()
    return render(
        request,
        "surveys/settings.html",
        {"form": form, "policy": policy, "delay_minutes": int(policy.delay.total_seconds() // 60)},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def survey_settings_edit(request: StaffRequest) -> HttpResponse:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins change the survey settings.")
    if request.method == "GET":
        row = SurveySettings.objects.filter(pk=1).first() or SurveySettings(pk=1)
        return _page(request, SurveySettingsForm(initial=_initial(row)))
    form = SurveySettingsForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    data = form.cleaned_data
    values = {key: data[key] for key in _initial(SurveySettings(pk=1)) if key in data}
    values.pop("sampling_percent", None)
    values["sampling_rate"] = data["sampling_percent"] / 100
    values["channels"] = [kind for kind, _ in CHANNEL_CHOICES if kind in data["channels"]]
    try:
        survey_settings_update(actor=request.user, **values)
    except ValidationError as exc:
        for message in exc.messages:
            form.add_error(None, message)
        return _page(request, form, status=400)
    messages.success(request, "Survey settings saved.")
    return redirect("surveys:settings")
