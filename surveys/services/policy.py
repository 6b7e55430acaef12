"""Survey settings (the policy an admin sets), signed survey links, and what all the survey services share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse

from supportdesk.errors import ApplicationError
from supportdesk.languages import supported_language
from supportdesk.models import AuditEntry, User
from supportdesk.services import (
    audit_record,
)
from surveys.models import Survey, SurveyResponse, SurveySettings
from tickets.models import Message

Status = Survey.Status
Resolved = SurveyResponse.Resolved


TOKEN_SALT = "surveys.survey-link"
# A claimed send that has not finished after this long is considered abandoned (worker died).
SEND_LEASE = timedelta(minutes=10)
# Subscribers of this kind get ``event_id`` = the solve event the answer is about (metrics marks
# that event's periods for recompute).
ANSWERED_KIND = "survey.answered"


class SurveyNotFound(ApplicationError):
    status = 404


class SurveyExpired(ApplicationError):
    status = 410


@dataclass(frozen=True)
class SurveyPolicy:
    delay: timedelta
    min_days_between: int
    window_days: int
    reminder_days: int
    reminders_enabled: bool
    channels: tuple[str, ...]
    sampling_rate: float
    nps_interval_days: int


def survey_policy() -> SurveyPolicy:
    """The effective rules: the admin's SurveySettings over the environment's defaults."""
    row = SurveySettings.objects.filter(pk=1).first() or SurveySettings(pk=1)

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return SurveyPolicy(
        delay=timedelta(minutes=pick(row.delay_minutes, settings.SURVEY_DELAY_MINUTES)),
        min_days_between=pick(row.min_days_between, settings.SURVEY_MIN_DAYS_BETWEEN),
        window_days=pick(row.window_days, settings.SURVEY_WINDOW_DAYS),
        reminder_days=pick(row.reminder_days, settings.SURVEY_REMINDER_DAYS),
        reminders_enabled=row.reminders_enabled,
        channels=tuple(row.channels or ()),
        sampling_rate=row.sampling_rate,
        nps_interval_days=row.nps_interval_days,
    )


@transaction.atomic
def survey_settings_update(*, actor: User | None = None, **values: Any) -> SurveySettings:
    """Creates or updates the singleton settings row; invalid values (ValidationError) or unknown
    keys (ValueError) change nothing. Changed values are audited."""
    allowed = {
        "delay_minutes",
        "min_days_between",
        "window_days",
        "reminder_days",
        "reminders_enabled",
        "channels",
        "sampling_rate",
        "nps_interval_days",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown survey settings: {', '.join(sorted(unknown))}")
    row, _ = SurveySettings.objects.select_for_update().get_or_create(pk=1)
    before = {key: getattr(row, key) for key in values}
    for key, value in values.items():
        setattr(row, key, value)
    row.full_clean()
    row.save()
    changed = {
        key: {"from": _jsonable(before[key]), "to": _jsonable(value)}
        for key, value in values.items()
        if before[key] != value
    }
    if changed:
        audit_record(
            action=AuditEntry.Action.SURVEY_SETTINGS_CHANGED,
            target=row,
            actor=actor,
            summary="Survey settings: "
            + ", ".join(f"{key} {v['from']} -> {v['to']}" for key, v in changed.items()),
            details=changed,
        )
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, int | float | str | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)


def survey_token(survey: Survey) -> str:
    """The signed token of the survey's link, ``<id>.<random key>:<signature>``: bound to this
    one survey (and so to its solve event). Expiry is the survey's ``expires_at``."""
    return signing.Signer(salt=TOKEN_SALT).sign(f"{survey.pk}.{survey.token_key}")


def survey_from_token(token: str) -> Survey:
    """The survey a link is for. Tampered or unknown: SurveyNotFound (404). Expired: SurveyExpired
    (410). Only a survey that was sent can be opened."""
    try:
        value = signing.Signer(salt=TOKEN_SALT).unsign(token)
        survey_id, key = value.split(".", 1)
        survey_pk = int(survey_id)
    except (signing.BadSignature, ValueError):
        raise SurveyNotFound("This survey link is not valid.") from None
    survey = (
        Survey.objects.select_related("agent", "conversation", "channel_message__channel")
        .filter(pk=survey_pk, token_key=key, status__in=[Status.SENT, Status.BOUNCED])
        .first()
    )
    if survey is None:
        raise SurveyNotFound("This survey link is not valid.")
    if survey.is_expired:
        raise SurveyExpired("This survey has closed.")
    return survey


def survey_url(survey: Survey, *, resolved: str | None = None, lang: str = "") -> str:
    """The survey page's link; ``lang`` shows it in that language whatever the browser says."""
    url = settings.SITE_URL + reverse("surveys:survey", kwargs={"token": survey_token(survey)})
    query = urlencode({k: v for k, v in (("resolved", resolved or ""), ("lang", lang)) if v})
    return f"{url}?{query}" if query else url


def survey_unsubscribe_url(survey: Survey, *, lang: str = "") -> str:
    url = settings.SITE_URL + reverse("surveys:unsubscribe", kwargs={"token": survey_token(survey)})
    return f"{url}?{urlencode({'lang': lang})}" if lang else url


def survey_inline_path(message: Message) -> str | None:
    """The inline questions of the survey a chat message carries (tickets.inline provider)."""
    survey = (
        Survey.objects.filter(channel_message_id=message.pk, via=Survey.Via.CHAT)
        .select_related("customer")
        .first()
    )
    if survey is None:
        return None
    path = reverse("surveys:inline", kwargs={"token": survey_token(survey)})
    # In the customer's language when it is known (else the browser's, as the chat page).
    lang = supported_language(survey.customer.language)
    return f"{path}?{urlencode({'lang': lang})}" if lang else path
