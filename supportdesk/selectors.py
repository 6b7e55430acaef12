"""Reads for staff and notifications."""

from __future__ import annotations

from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from supportdesk.models import AuditEntry, MailTemplate, Notification, User, WebhookAllowedHost


def notification_unread_count(*, user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notification_unread_summary(*, user: User) -> dict[str, int]:
    """``{"unread": n, "latest_id": id}`` for the top bar's bell: one aggregate on the partial
    index. ``latest_id`` (0 when none) tells the page's script which notifications are new."""
    summary = Notification.objects.filter(recipient=user, read_at__isnull=True).aggregate(
        unread=Count("id"), latest_id=Max("id")
    )
    return {"unread": summary["unread"] or 0, "latest_id": summary["latest_id"] or 0}


def audit_list_for_user(*, user: User, action: str = "") -> QuerySet[AuditEntry]:
    """Admins see every entry; managers the entries about their teams; agents none."""
    entries = AuditEntry.objects.select_related("team").order_by("-at", "-id")
    if action:
        entries = entries.filter(action=action)
    if user.is_admin:
        return entries
    if user.is_manager:
        return entries.filter(team__in=user.teams.all())
    return entries.none()


def mail_template_list_all() -> list[MailTemplate]:
    """Every stored template wording (a handful of rows: keys times languages)."""
    return list(MailTemplate.objects.select_related("updated_by").order_by("key", "language"))


def mail_template_get(*, key: str, language: str) -> MailTemplate | None:
    return MailTemplate.objects.filter(key=key, language=language).first()


def staff_list_for_admin() -> QuerySet[User]:
    """Every staff account with its teams, whether it has enrolled TOTP (``has_totp``) and whether
    it is still an unanswered invitation (``invited``: no usable password, never signed in).
    Three queries whatever the number of accounts."""
    from allauth.mfa.models import Authenticator

    totp = Authenticator.objects.filter(user=OuterRef("pk"), type=Authenticator.Type.TOTP)
    return (
        User.objects.prefetch_related("teams")
        .select_related("api_token")
        .annotate(
            has_totp=Exists(totp),
            invited=Q(password__startswith="!", last_login__isnull=True),
        )
        .order_by("-is_active", "email")
    )


def webhook_allowed_host_list() -> list[WebhookAllowedHost]:
    """The hosts admins allowed for webhook URLs, with who allowed them (1 query)."""
    return list(WebhookAllowedHost.objects.select_related("created_by").order_by("host"))
