"""Writes for staff and teams, notifications, idempotency keys and the mail the desk sends
(the outbox has its own module: supportdesk.outbox)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from supportdesk import mailtemplates, request_context
from supportdesk.errors import ApplicationError
from supportdesk.models import (
    ApiToken,
    AuditEntry,
    IdempotencyKey,
    MailTemplate,
    Notification,
    SentMail,
    Team,
    User,
    new_api_token,
)
from supportdesk.outbox import outbox_enqueue
from supportdesk.solicitation import solicitation_found

logger = logging.getLogger(__name__)


def team_get_or_create(*, name: str) -> Team:
    team, _ = Team.objects.get_or_create(name=name.strip())
    return team


# --- Staff administration (accounts) -------------------------------------------------------------


def _team_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ApplicationError("A team needs a name.")
    if len(name) > 100:
        raise ApplicationError("A team name has at most 100 characters.")
    return name


@transaction.atomic
def team_create(*, name: str, actor: User) -> Team:
    name = _team_name(name)
    if Team.objects.filter(name__iexact=name).exists():
        raise ApplicationError(f"A team called {name} exists already.")
    team = Team.objects.create(name=name)
    audit_record(
        action=AuditEntry.Action.TEAM_CREATED,
        target=team,
        actor=actor,
        team=team,
        summary=f"Team {name} created",
    )
    return team


@transaction.atomic
def team_rename(*, team: Team, name: str, actor: User) -> Team:
    name = _team_name(name)
    if Team.objects.filter(name__iexact=name).exclude(pk=team.pk).exists():
        raise ApplicationError(f"A team called {name} exists already.")
    old = team.name
    if old == name:
        return team
    team.name = name
    team.save(update_fields=["name", "updated_at"])
    audit_record(
        action=AuditEntry.Action.TEAM_RENAMED,
        target=team,
        actor=actor,
        team=team,
        summary=f"Team {old} renamed {name}",
        details={"from": old, "to": name},
    )
    return team


def staff_invitation_link(*, user: User) -> str:
    """The one-time link that lets an invited member of staff set a password.

    It is allauth's password-reset link: signed with SECRET_KEY over the account's password hash
    and last login (so it stops working once used), expiring after PASSWORD_RESET_TIMEOUT.
    """
    from allauth.account.forms import default_token_generator
    from allauth.account.utils import user_pk_to_url_str

    path = reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(user),
            "key": default_token_generator.make_token(user),
        },
    )
    return f"{settings.SITE_URL}{path}"


def _send_invitation(*, user: User, actor: User) -> None:
    link = staff_invitation_link(user=user)
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    desk = mailtemplates.desk_name()
    body = (
        f"Hello,\n\n{actor} invited you to {desk} as {user.get_role_display().lower()}.\n\n"
        f"Set your password here (the link works once, for {hours} hours):\n{link}\n\n"
        f"Your sign-in is {user.email}.\n"
    )
    message = EmailMessage(
        subject=f"You are invited to {desk}",
        body=body,
        to=[user.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    transaction.on_commit(message.send)


def _teams_by_id(team_ids: Iterable[int]) -> list[Team]:
    ids = sorted(set(team_ids))
    teams = list(Team.objects.filter(pk__in=ids))
    if len(teams) != len(ids):
        raise ApplicationError("One of the teams does not exist.")
    return teams


@transaction.atomic
def staff_invite(
    *, email: str, role: str, team_ids: Iterable[int], actor: User, full_name: str = ""
) -> User:
    """Create the account of an invited member of staff and email them a link to set a password.

    The account has no usable password until they follow the link (or sign in through single
    sign-on with the same verified address). Inviting a pending address again sends a new link.
    """
    from allauth.account.models import EmailAddress
    from django.core.validators import validate_email

    email = email.strip().lower()
    try:
        validate_email(email)
    except Exception as exc:
        raise ApplicationError("Enter a valid email address.") from exc
    if role not in User.Role.values:
        raise ApplicationError(f"Role must be one of {', '.join(User.Role.values)}.")
    teams = _teams_by_id(team_ids)
    existing = User.objects.select_for_update().filter(email__iexact=email).first()
    if existing is not None:
        if existing.has_usable_password() or existing.last_login is not None:
            raise ApplicationError(f"{email} has an account already.")
        user = existing
        before = staff_snapshot(user)
    else:
        user = User.objects.create_user(email, None, full_name=full_name.strip()[:150])
        before = None
    user.role = role
    user.is_staff = user.is_superuser = role == User.Role.ADMIN
    if full_name.strip():
        user.full_name = full_name.strip()[:150]
    user.save()
    user.teams.set(teams)
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    api_token_get_or_create(user=user)
    if before is not None:
        staff_audit_changes(user=user, before=before, actor=actor)
    audit_record(
        action=AuditEntry.Action.STAFF_INVITED,
        target=user,
        actor=actor,
        summary=f"{email} invited as {role}" + (" (again)" if before is not None else ""),
        details=staff_snapshot(user),
    )
    _send_invitation(user=user, actor=actor)
    return user


@transaction.atomic
def staff_update(*, user: User, role: str, team_ids: Iterable[int], actor: User) -> User:
    """Change a member of staff's role and teams (teams are replaced, not added)."""
    if role not in User.Role.values:
        raise ApplicationError(f"Role must be one of {', '.join(User.Role.values)}.")
    teams = _teams_by_id(team_ids)
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.pk == actor.pk and role != User.Role.ADMIN:
        raise ApplicationError("You cannot take away your own admin role.")
    before = staff_snapshot(user)
    user.role = role
    user.is_staff = user.is_superuser = role == User.Role.ADMIN
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    user.teams.set(teams)
    staff_audit_changes(user=user, before=before, actor=actor)
    return user


def staff_sessions_end(*, user: User) -> int:
    """Delete every session of the account (allauth.usersessions knows which are whose)."""
    from allauth.usersessions.models import UserSession

    sessions = list(UserSession.objects.filter(user=user))
    for session in sessions:
        session.end()
    return len(sessions)


@transaction.atomic
def staff_deactivate(*, user: User, actor: User) -> User:
    """Stop the account at once: no sign-in, its API token answers 401, its sessions end."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.pk == actor.pk:
        raise ApplicationError("You cannot deactivate your own account.")
    if not user.is_active:
        return user
    user.is_active = False
    user.save(update_fields=["is_active"])
    ended = staff_sessions_end(user=user)
    audit_record(
        action=AuditEntry.Action.STAFF_DEACTIVATED,
        target=user,
        actor=actor,
        summary=f"{user.email} deactivated ({ended} session(s) ended)",
        details={"sessions_ended": ended},
    )
    return user


@transaction.atomic
def staff_reactivate(*, user: User, actor: User) -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_active:
        return user
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_record(
        action=AuditEntry.Action.STAFF_REACTIVATED,
        target=user,
        actor=actor,
        summary=f"{user.email} reactivated",
    )
    return user


@transaction.atomic
def staff_create_or_update(
    *,
    email: str,
    role: str,
    team_names: Iterable[str] = (),
    password: str | None = None,
    full_name: str | None = None,
    actor: User | None = None,
) -> tuple[User, ApiToken]:
    """Create or update a staff account and return it with its API token.

    The role decides Django admin access (admins only). Teams are added, never removed, so that
    running the command twice with different teams is additive; an unknown team is created.
    Account creation, role and team changes, a password set and a new token are audited.
    """
    if role not in User.Role.values:
        raise ValueError(f"role must be one of {', '.join(User.Role.values)}")
    email = email.strip().lower()
    user = User.objects.select_for_update().filter(email=email).first()
    before = staff_snapshot(user) if user is not None else None
    if user is None:
        user = User.objects.create_user(email, password)
    elif password:
        user.set_password(password)
    user.role = role
    user.is_staff = role == User.Role.ADMIN
    user.is_superuser = role == User.Role.ADMIN
    if full_name is not None:
        user.full_name = full_name
    elif not user.full_name:
        user.full_name = email.split("@")[0].replace(".", " ").title()
    user.save()
    for name in team_names:
        user.teams.add(team_get_or_create(name=name))
    token, token_created = api_token_get_or_create(user=user)
    if before is None:
        audit_record(
            action=AuditEntry.Action.STAFF_CREATED,
            target=user,
            actor=actor,
            summary=f"{user.email} created as {user.role}",
            details=staff_snapshot(user),
        )
    else:
        staff_audit_changes(user=user, before=before, actor=actor)
        if password:
            audit_record(
                action=AuditEntry.Action.STAFF_PASSWORD_SET,
                target=user,
                actor=actor,
                summary=f"Password of {user.email} set",
            )
    if token_created:
        audit_record(
            action=AuditEntry.Action.API_TOKEN_CREATED,
            target=user,
            actor=actor,
            summary=f"API token of {user.email} created",
        )
    return user, token


def api_token_get_or_create(*, user: User) -> tuple[ApiToken, bool]:
    """The account's API token, issued (random, stored digested and sealed) if it has none."""
    token = ApiToken.objects.filter(user=user).first()
    if token is not None:
        return token, False
    token = ApiToken(user=user)
    token.key = new_api_token()
    token.save()
    return token, True


@transaction.atomic
def staff_token_rotate(*, user: User, actor: User | None = None) -> ApiToken:
    """Replace the account's API token: the old key stops working at once."""
    ApiToken.objects.filter(user=user).delete()
    token = ApiToken(user=user)
    token.key = new_api_token()
    token.save()
    audit_record(
        action=AuditEntry.Action.API_TOKEN_ROTATED,
        target=user,
        actor=actor,
        summary=f"API token of {user.email} rotated",
    )
    return token


# --- Audit log ----------------------------------------------------------------------------------


def staff_snapshot(user: User) -> dict[str, Any]:
    """What the audit log compares for a staff account (never the password hash)."""
    return {
        "role": user.role,
        "teams": sorted(user.teams.values_list("name", flat=True)),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }


def staff_audit_changes(*, user: User, before: dict[str, Any], actor: User | None) -> None:
    """Record role, team and access changes of ``user`` since the ``before`` snapshot."""
    after = staff_snapshot(user)
    if before["role"] != after["role"]:
        audit_record(
            action=AuditEntry.Action.STAFF_ROLE_CHANGED,
            target=user,
            actor=actor,
            summary=f"{user.email}: role {before['role']} -> {after['role']}",
            details={"from": before["role"], "to": after["role"]},
        )
    if before["teams"] != after["teams"]:
        added = sorted(set(after["teams"]) - set(before["teams"]))
        removed = sorted(set(before["teams"]) - set(after["teams"]))
        parts = [f"+{name}" for name in added] + [f"-{name}" for name in removed]
        audit_record(
            action=AuditEntry.Action.STAFF_TEAMS_CHANGED,
            target=user,
            actor=actor,
            summary=f"{user.email}: teams {' '.join(parts)}",
            details={"added": added, "removed": removed, "teams": after["teams"]},
        )
    access = ("is_active", "is_staff", "is_superuser")
    changed = {key: after[key] for key in access if before[key] != after[key]}
    if changed:
        audit_record(
            action=AuditEntry.Action.STAFF_ACCESS_CHANGED,
            target=user,
            actor=actor,
            summary=f"{user.email}: "
            + ", ".join(f"{key} {before[key]} -> {value}" for key, value in changed.items()),
            details={key: {"from": before[key], "to": value} for key, value in changed.items()},
        )


def audit_record(
    *,
    action: str,
    target: Any,
    summary: str,
    actor: User | None = None,
    team: Team | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry. Call it inside the transaction of the change it describes.

    ``target`` is a model instance or a ``(type, id)`` pair. The client address and request id
    come from the current request, if any (``supportdesk.request_context``).
    """
    if isinstance(target, tuple):
        target_type, target_id = target
    else:
        target_type = f"{target._meta.app_label}.{target._meta.model_name}"
        target_id = target.pk
    context = request_context.current()
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEntry.objects.create(
        actor=actor,
        actor_email=actor.email if actor is not None else "",
        action=action,
        target_type=target_type,
        target_id="" if target_id is None else str(target_id),
        team=team,
        summary=summary[:500],
        details=details or {},
        ip=context.ip,
        request_id=context.request_id,
    )


def notification_create(
    *,
    recipient: User,
    kind: str,
    title: str,
    body: str = "",
    url: str = "",
    email: bool = False,
) -> Notification:
    """Notifies one member of staff in the workspace, and by email when ``email`` is set.

    Call it inside the transaction of the change it is about: the email is an outbox task, so it
    goes out once, after commit, and not at all if the change rolls back.
    """
    notification = Notification.objects.create(
        recipient=recipient, kind=kind, title=title[:200], body=body, url=url[:500]
    )
    if email and recipient.is_active:
        outbox_enqueue(
            task_name="supportdesk.tasks.notification_email_task",
            kwargs={"notification_id": notification.pk},
        )
    return notification


def notification_email_send(*, notification_id: int) -> bool:
    """Sends a notification's email once: claimed by a conditional UPDATE, so a retry or a second
    relay of the same outbox row sends nothing more. Returns whether this call sent it."""
    now = timezone.now()
    claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(
        emailed_at=now
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("recipient").get(pk=notification_id)
    recent = (
        Notification.objects.filter(
            recipient_id=notification.recipient_id, emailed_at__gt=now - timedelta(hours=1)
        )
        .exclude(pk=notification_id)
        .count()
    )
    if recent >= settings.STAFF_NOTIFICATION_EMAILS_PER_HOUR:
        # A flood (a burst of samples, mentions, check-ins) never floods a mailbox: past the
        # hourly cap the notification stays in the workspace only.
        logger.warning(
            "notification %s not emailed: %s already had %s emails this hour",
            notification_id,
            notification.recipient_id,
            recent,
        )
        return False
    link = f"{settings.SITE_URL}{notification.url}" if notification.url else settings.SITE_URL
    subject, template = mailtemplates.mail_template_for(key=MailTemplate.Key.STAFF_NOTIFICATION)
    rendered = mailtemplates.mail_render(
        subject=subject,
        body=template,
        variables={
            "notification.title": notification.title,
            "notification.body": notification.body,
            "notification.link": link,
            "recipient.name": str(notification.recipient),
            "desk.name": mailtemplates.desk_name(),
        },
        html=False,
    )
    message = EmailMessage(
        subject=rendered.subject,
        body=f"{rendered.text}\n",
        to=[notification.recipient.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    try:
        message.send()
    except Exception:
        # Un-claim so the task's retry sends it; the error propagates to Celery.
        Notification.objects.filter(pk=notification_id).update(emailed_at=None)
        raise
    return True


def notifications_mark_read(*, recipient: User, ids: Iterable[int] | None = None) -> int:
    """Marks the recipient's notifications read (all unread ones when ``ids`` is None)."""
    unread = Notification.objects.filter(recipient=recipient, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


def idempotency_key_claim(*, user: User, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Claims ``key`` for ``user``'s request; None when another request holds it (replay that).

    Call inside the transaction of the change: a concurrent claim of the same key blocks on the
    unique constraint until the first commits (then None) or rolls back (then it claims). An
    expired claim of the same key is replaced.
    """
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    IdempotencyKey.objects.filter(user=user, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user=user, key=key, fingerprint=fingerprint)
    except IntegrityError:
        return None


def idempotency_key_store(*, record: IdempotencyKey, status: int, body: Any) -> None:
    """Stores the first answer to a claimed key, replayed to retries."""
    record.response_status = status
    record.response_body = body
    record.save(update_fields=["response_status", "response_body"])


def idempotency_keys_prune(*, older_than_hours: int | None = None) -> int:
    """Delete Idempotency-Key answers past their lifetime; returns how many."""
    hours = settings.IDEMPOTENCY_KEY_HOURS if older_than_hours is None else older_than_hours
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- Mail the desk sends: the per-address cap on automatic mail, and what bounces may refer to ---


def sent_mail_record(*, address: str, message_id: str, kind: str, automatic: bool) -> SentMail:
    """Records one email sent (or about to be sent) to ``address``."""
    return SentMail.objects.create(
        address=address.strip().lower(),
        message_id=message_id.strip().strip("<>")[:998],
        kind=kind,
        automatic=automatic,
    )


def automatic_mail_claim(*, address: str, message_id: str, kind: str) -> SentMail | None:
    """Claims one automatic email to ``address`` under the per-address cap; None when over it.

    The cap (``AUTO_MAIL_MAX_PER_HOUR`` and ``AUTO_MAIL_MAX_PER_DAY``) holds whatever sends the
    mail (surveys, reminders) and however many solves, reopen loops or auto-responders ask for it.
    The claim is written and committed first, then every claim in the window is counted, ours
    included: two concurrent senders may both back off, but never both exceed the cap. A caller
    whose send then fails calls ``automatic_mail_release`` so the retry can claim again.
    """
    now = timezone.now()
    with transaction.atomic():
        claim = sent_mail_record(address=address, message_id=message_id, kind=kind, automatic=True)
    recent = SentMail.objects.filter(
        address=claim.address, automatic=True, sent_at__gt=now - timedelta(days=1)
    )
    last_hour = recent.filter(sent_at__gt=now - timedelta(hours=1)).count()
    if (
        last_hour > settings.AUTO_MAIL_MAX_PER_HOUR
        or recent.count() > settings.AUTO_MAIL_MAX_PER_DAY
    ):
        claim.delete()
        logger.warning("automatic %s to %s held back: per-address cap reached", kind, claim.address)
        return None
    return claim


def automatic_mail_release(*, claim: SentMail) -> None:
    """Gives a claim back (the send failed and will be retried)."""
    SentMail.objects.filter(pk=claim.pk).delete()


def sent_mail_exists(*, address: str, message_ids: Iterable[str]) -> bool:
    """Whether the desk sent one of ``message_ids`` to ``address`` (a bounce's proof)."""
    ids = [mid.strip().strip("<>") for mid in message_ids if mid.strip()]
    return (
        bool(ids)
        and SentMail.objects.filter(address=address.strip().lower(), message_id__in=ids).exists()
    )


@transaction.atomic
def mail_template_save(
    *, key: str, language: str, subject: str, body: str, actor: User
) -> MailTemplate:
    """Store an admin's wording of an automatic email for one language (insert or replace).

    Validates only shape (known key, a language code, non-empty subject and body); what the text
    may do is limited by the renderer (``supportdesk.mailtemplates``), not by checking it here.
    Records an audit entry with the subject (the body may be long).
    """
    if key not in MailTemplate.Key.values:
        raise ApplicationError(f"There is no template {key!r}.")
    language = language.strip().lower()
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", language):
        raise ApplicationError("The language is a code such as en, es or pt-br.")
    subject = " ".join(subject.split())
    body = body.strip()
    if not subject or not body:
        raise ApplicationError("A template needs a subject and a body.")
    if key != MailTemplate.Key.STAFF_NOTIFICATION:
        # The integrity panel's detector (supportdesk.solicitation): a customer's wording must
        # not ask for a score, or the answers it collects measure the asking.
        asking = solicitation_found(f"{subject}\n{body}")
        if asking:
            raise ApplicationError(
                f"This wording asks for a score (“{asking}”). Surveys must not suggest an "
                "answer: the integrity panel flags the same words in agents' replies."
            )
    template, created = MailTemplate.objects.update_or_create(
        key=key,
        language=language,
        defaults={"subject": subject[:300], "body": body[:20_000], "updated_by": actor},
    )
    audit_record(
        action=AuditEntry.Action.MAIL_TEMPLATE_SAVED,
        target=template,
        summary=f"{'Added' if created else 'Changed'} the {key} email ({language}): {subject[:120]}",
        actor=actor,
        details={"key": key, "language": language, "created": created},
    )
    return template


@transaction.atomic
def mail_template_reset(*, key: str, language: str, actor: User) -> bool:
    """Delete the stored wording for ``key`` in ``language``: the fallback applies again."""
    deleted, _ = MailTemplate.objects.filter(key=key, language=language.strip().lower()).delete()
    if deleted:
        audit_record(
            action=AuditEntry.Action.MAIL_TEMPLATE_RESET,
            target=("MailTemplate", 0),
            summary=f"Reset the {key} email ({language}) to the fallback wording",
            actor=actor,
            details={"key": key, "language": language},
        )
    return bool(deleted)


@transaction.atomic
def user_signature_update(*, user: User, signature: str, actor: User) -> User:
    """Set ``user``'s email signature (agents set their own; admins anyone's)."""
    if actor.pk != user.pk and not actor.is_admin:
        raise ApplicationError("Only admins change someone else's signature.")
    user.signature = signature.strip()[:2000]
    user.save(update_fields=["signature"])
    audit_record(
        action=AuditEntry.Action.SIGNATURE_CHANGED,
        target=user,
        summary=f"Changed the email signature of {user.email}",
        actor=actor,
    )
    return user
