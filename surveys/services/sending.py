"""Sending surveys and the one reminder: claimed by a lease, so each goes out once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext

from supportdesk import mailtemplates
from supportdesk.models import MailTemplate, SentMail
from supportdesk.services import (
    automatic_mail_claim,
    automatic_mail_release,
)
from surveys.models import Survey, SurveyResponse, SurveyUnsubscribe
from surveys.services.policy import (
    SEND_LEASE,
    SurveyPolicy,
    survey_policy,
    survey_unsubscribe_url,
    survey_url,
)
from tickets import tokens
from tickets.models import Event, Identity, Message
from tickets.services import ChannelRoute, customer_channel_route, message_automated_send

logger = logging.getLogger(__name__)

Status = Survey.Status
Skip = Survey.SkipReason
Via = Survey.Via
Resolved = SurveyResponse.Resolved
# The customer has no email the survey can go to: it goes on their chat or social channel.
_NO_DELIVERABLE_EMAIL = (Skip.NO_EMAIL, Skip.BOUNCED)


def _skip_reason(survey: Survey, policy: SurveyPolicy, now: datetime) -> str:
    """Why this survey must not go out now ("" when it may)."""
    if Event.objects.filter(
        conversation_id=survey.conversation_id,
        kind=Event.Kind.REOPENED,
        occurred_at__gt=survey.solved_at,
        occurred_at__lte=now,
    ).exists():
        return Skip.REOPENED
    last_inbound = (
        Message.objects.filter(
            conversation_id=survey.conversation_id,
            direction=Message.Direction.INBOUND,
            sent_at__lte=survey.solved_at,
        )
        .order_by("-sent_at", "-id")
        .only("automated")
        .first()
    )
    if last_inbound is not None and last_inbound.automated:
        return Skip.AUTO_REPLY
    if SurveyUnsubscribe.objects.filter(customer_id=survey.customer_id).exists():
        return Skip.UNSUBSCRIBED
    if policy.min_days_between and (
        Survey.objects.filter(
            customer_id=survey.customer_id,
            sent_at__gt=now - timedelta(days=policy.min_days_between),
        )
        .exclude(pk=survey.pk)
        .exists()
    ):
        return Skip.THROTTLED
    return ""


def _recipient(survey: Survey) -> tuple[Identity | None, str]:
    """The customer's email identity to survey, or (None, reason)."""
    emails = list(Identity.objects.filter(customer_id=survey.customer_id, kind=Identity.Kind.EMAIL))
    unsubscribed = set(
        SurveyUnsubscribe.objects.filter(email__in=[i.value for i in emails]).values_list(
            "email", flat=True
        )
    )
    usable = [i for i in emails if i.undeliverable_at is None and i.value not in unsubscribed]
    if not usable:
        if any(i.undeliverable_at is not None for i in emails):
            return None, Skip.BOUNCED
        return None, Skip.UNSUBSCRIBED if unsubscribed else Skip.NO_EMAIL
    # The address the customer wrote from in this conversation, else a verified one, else any.
    used = set(
        Message.objects.filter(
            conversation_id=survey.conversation_id,
            direction=Message.Direction.INBOUND,
            identity__in=usable,
        ).values_list("identity_id", flat=True)
    )
    usable.sort(key=lambda i: (i.pk not in used, not i.verified, i.pk))
    return usable[0], ""


def _nps_due(survey: Survey, policy: SurveyPolicy, now: datetime) -> bool:
    """The relationship question: asked of a customer at most once every nps_interval_days."""
    return (
        not Survey.objects.filter(
            customer_id=survey.customer_id,
            asks_nps=True,
            sent_at__gt=now - timedelta(days=policy.nps_interval_days),
        )
        .exclude(pk=survey.pk)
        .exists()
    )


def _claim_send(survey_id: int, now: datetime) -> bool:
    return bool(
        Survey.objects.filter(
            Q(send_claimed_at__isnull=True) | Q(send_claimed_at__lt=now - SEND_LEASE),
            pk=survey_id,
            status=Status.SCHEDULED,
            due_at__lte=now,
        ).update(send_claimed_at=now, send_attempts=F("send_attempts") + 1)
    )


def survey_send(*, survey_id: int) -> bool:
    """Sends a due survey email exactly once; returns whether this call sent it.

    Side effects: claims the send (lease), then either marks the survey ``skipped`` with a reason
    (throttled, unsubscribed, bounced, no email, auto-reply, reopened, or over the per-address
    cap on automatic mail) or emails the customer's
    email identity and marks it ``sent`` with its link's expiry. A failed send releases the lease
    and raises (the task retries).
    """
    now = timezone.now()
    if not _claim_send(survey_id, now):
        return False
    survey = Survey.objects.select_related("conversation__customer", "agent").get(pk=survey_id)
    if survey.conversation.spam_at is not None:
        # Marked as spam after the solve: never surveyed.
        Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
            status=Status.CANCELLED, cancelled_at=now, send_claimed_at=None
        )
        return False
    policy = survey_policy()
    reason = _skip_reason(survey, policy, now)
    identity = None
    if not reason:
        identity, reason = _recipient(survey)
    if reason in _NO_DELIVERABLE_EMAIL:
        route = customer_channel_route(conversation_id=survey.conversation_id)
        if route is not None and not route.channel.surveyed:
            reason = Skip.CHANNEL
        elif route is not None and route.deliverable:
            return _survey_send_on_channel(survey, route, policy, now)
    if reason:
        Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
            status=Status.SKIPPED, skip_reason=reason, send_claimed_at=None
        )
        return False
    assert identity is not None
    survey.identity = identity
    survey.email = identity.value
    survey.asks_nps = _nps_due(survey, policy, now)
    survey.expires_at = now + timedelta(days=policy.window_days)
    survey.message_id = survey.message_id or make_msgid(
        domain=settings.SUPPORT_EMAIL.rpartition("@")[2] or "supportdesk.localhost"
    ).strip("<>")
    Survey.objects.filter(pk=survey_id).update(
        identity=identity,
        email=survey.email,
        via=Via.EMAIL,
        asks_nps=survey.asks_nps,
        expires_at=survey.expires_at,
        message_id=survey.message_id,
    )
    claim = automatic_mail_claim(
        address=survey.email, message_id=survey.message_id, kind=SentMail.Kind.SURVEY
    )
    if claim is None:
        Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
            status=Status.SKIPPED, skip_reason=Skip.MAIL_CAP, send_claimed_at=None
        )
        return False
    try:
        _survey_email(survey, reminder=False).send(fail_silently=False)
    except Exception:
        automatic_mail_release(claim=claim)
        Survey.objects.filter(pk=survey_id).update(send_claimed_at=None)
        raise
    Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
        status=Status.SENT, sent_at=timezone.now()
    )
    return True


def survey_channel_text(url: str) -> str:
    """The survey message on a chat or social channel: the question and the link."""
    return gettext("Did we resolve your request? Tell us in a few clicks: %(url)s") % {"url": url}


def _survey_send_on_channel(
    survey: Survey, route: ChannelRoute, policy: SurveyPolicy, now: datetime
) -> bool:
    """The customer has no deliverable email: the survey link goes as an automated message on
    the chat or social channel they last wrote on (same link, same token, same rules)."""
    with transaction.atomic():
        locked = (
            Survey.objects.select_for_update()
            .filter(pk=survey.pk, status=Status.SCHEDULED)
            .select_related("conversation__customer")
            .first()
        )
        if locked is None:  # cancelled (the customer wrote) since the claim
            return False
        asks_nps = _nps_due(locked, policy, now)
        expires_at = now + timedelta(days=policy.window_days)
        # In the customer's language, as the survey email would be; the link keeps it.
        wanted = mailtemplates.translated_language(locked.conversation.customer.language)
        with translation.override(wanted or mailtemplates.default_language()):
            body = survey_channel_text(survey_url(locked, lang=wanted))
        message = message_automated_send(
            conversation=locked.conversation,
            route=route,
            body=body,
            automated="survey",
            at=now,
        )
        Survey.objects.filter(pk=survey.pk).update(
            status=Status.SENT,
            sent_at=now,
            via=route.channel.kind,
            identity=route.identity,
            channel_message=message,
            asks_nps=asks_nps,
            expires_at=expires_at,
        )
    return True


def surveys_send_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat: sends the surveys whose due time has come. Returns how many went out."""
    now = now or timezone.now()
    ids = list(
        Survey.objects.filter(
            Q(send_claimed_at__isnull=True) | Q(send_claimed_at__lt=now - SEND_LEASE),
            status=Status.SCHEDULED,
            due_at__lte=now,
        )
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for survey_id in ids:
        try:
            sent += survey_send(survey_id=survey_id)
        except Exception:  # one bad address must not hold up the others; the lease is released
            logger.exception("survey %s not sent", survey_id)
    return sent


def survey_remind(*, survey_id: int) -> bool:
    """Sends the single reminder of an unanswered survey once; returns whether this call sent it.

    Side effects: claims ``reminder_claimed_at`` by a conditional UPDATE, emails the same link,
    sets ``reminded_at``. Nothing when the survey was answered, expired, bounced or unsubscribed.
    """
    now = timezone.now()
    policy = survey_policy()
    claimed = (
        Survey.objects.filter(
            Q(reminder_claimed_at__isnull=True) | Q(reminder_claimed_at__lt=now - SEND_LEASE),
            pk=survey_id,
            status=Status.SENT,
            reminded_at__isnull=True,
            sent_at__lte=now - timedelta(days=policy.reminder_days),
            expires_at__gt=now,
            responses__isnull=True,
        )
        .exclude(via__in=[Via.CHAT, Via.SOCIAL])  # a channel survey has no reminder
        .exclude(customer__survey_unsubscribes__isnull=False)
        .update(reminder_claimed_at=now)
    )
    if not claimed:
        return False
    survey = Survey.objects.select_related("conversation__customer", "agent").get(pk=survey_id)
    if Identity.objects.filter(
        kind=Identity.Kind.EMAIL, value=survey.email, undeliverable_at__isnull=False
    ).exists():
        return False  # the address bounced since (beat looks again only after the lease)
    message_id = make_msgid(
        domain=settings.SUPPORT_EMAIL.rpartition("@")[2] or "supportdesk.localhost"
    ).strip("<>")
    claim = automatic_mail_claim(
        address=survey.email, message_id=message_id, kind=SentMail.Kind.SURVEY_REMINDER
    )
    if claim is None:
        # Over the per-address cap: the claim stays until its lease ends, then a later beat
        # tries again (the reminder is late, never doubled).
        return False
    try:
        email = _survey_email(survey, reminder=True)
        email.extra_headers["Message-ID"] = f"<{message_id}>"  # what a bounce of it names
        email.send(fail_silently=False)
    except Exception:
        automatic_mail_release(claim=claim)
        Survey.objects.filter(pk=survey_id).update(reminder_claimed_at=None)
        raise
    Survey.objects.filter(pk=survey_id).update(reminded_at=timezone.now())
    return True


def surveys_remind_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat: sends the reminders that are due (at most one per survey)."""
    now = now or timezone.now()
    policy = survey_policy()
    if not policy.reminders_enabled:
        return 0
    ids = list(
        Survey.objects.filter(
            status=Status.SENT,
            reminded_at__isnull=True,
            sent_at__lte=now - timedelta(days=policy.reminder_days),
            expires_at__gt=now,
            responses__isnull=True,
        )
        .exclude(via__in=[Via.CHAT, Via.SOCIAL])
        .order_by("sent_at")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for survey_id in ids:
        try:
            sent += survey_remind(survey_id=survey_id)
        except Exception:
            logger.exception("survey reminder %s not sent", survey_id)
    return sent


def _survey_variables(survey: Survey) -> dict[str, str]:
    conversation = survey.conversation
    customer = conversation.customer
    return {
        "customer.name": customer.name or survey.email,
        "customer.first_name": mailtemplates.first_word(customer.name),
        "conversation.id": str(conversation.pk),
        "conversation.subject": conversation.subject,
        "channel.name": "",
        "desk.name": mailtemplates.desk_name(),
        "agent.first_name": survey.agent.first_name if survey.agent else "",
    }


def _survey_email(survey: Survey, *, reminder: bool) -> EmailMultiAlternatives:
    """The survey (or its reminder) in the customer's language (``Customer.language``; the
    desk's default when not known)."""
    language = survey.conversation.customer.language
    wanted = mailtemplates.translated_language(language)
    with translation.override(wanted or mailtemplates.default_language()):
        return _survey_email_in_language(
            survey, reminder=reminder, language=language, wanted=wanted
        )


def _survey_email_in_language(
    survey: Survey, *, reminder: bool, language: str, wanted: str
) -> EmailMultiAlternatives:
    conversation = survey.conversation
    answer_labels = {
        Resolved.YES: gettext("Yes"),
        Resolved.PARTLY: gettext("Partly"),
        Resolved.NO: gettext("No"),
    }
    context = {
        "survey": survey,
        "reminder": reminder,
        "subject": conversation.subject,
        "agent_first_name": survey.agent.first_name if survey.agent else "",
        "survey_url": survey_url(survey, lang=wanted),
        "answer_urls": [
            (answer_labels[Resolved(value)], survey_url(survey, resolved=value, lang=wanted))
            for value in Resolved.values
        ],
        "unsubscribe_url": survey_unsubscribe_url(survey, lang=wanted),
        "language": translation.get_language(),
    }
    subject = (
        gettext("Reminder: Did we resolve your request?")
        if reminder
        else gettext("Did we resolve your request?")
    )
    # An admin's wording (Email templates) replaces the greeting, the first paragraph and the
    # subject; the question, the answer links and the unsubscribe link always stay. Wording in
    # the customer's language first; the default language's only when the desk has no built-in
    # translation for theirs (supportdesk.mailtemplates).
    stored = mailtemplates.mail_template_stored(
        key=MailTemplate.Key.SURVEY_REMINDER if reminder else MailTemplate.Key.SURVEY,
        language=language,
        fallback=not wanted,
    )
    if stored is not None:
        rendered = mailtemplates.mail_render(
            subject=stored[0], body=stored[1], variables=_survey_variables(survey)
        )
        subject = rendered.subject or subject
        context["intro_text"] = rendered.text
        context["intro_html"] = rendered.html
    if conversation.subject:
        subject = f"{subject} {tokens.subject_tag(conversation.pk)}"
    headers = {
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Reply-To": tokens.reply_address(conversation.pk),
        "X-Supportdesk-Survey": str(survey.pk),
    }
    if not reminder and survey.message_id:
        headers["Message-ID"] = f"<{survey.message_id}>"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("surveys/email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[survey.email],
        headers=headers,
    )
    message.attach_alternative(render_to_string("surveys/email.html", context), "text/html")
    return message
