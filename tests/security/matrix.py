"""The authorisation matrix as data: every URL pattern and API operation, who may call it.

``OPS`` lists each (route, method) of the root URLconf with a rule (``who``), the status when the
caller may (``ok``) and when a signed-in member of staff may not (``denied``; 404 for objects, so
that no one learns whether another team's object exists). Anonymous callers and customers get
the login redirect (pages) or 401 (API). ``tests/security/test_authz_matrix.py`` walks it for six
callers against Team A's and Team B's objects and fails on any route the matrix does not list.

Rules (``who``):
  public        anyone (login page, health check, chat page, API schema and docs)
  token         the holder of a survey link: the link is the authorisation (customer role)
  channel       an inbound channel's X-Channel-Token (or provider webhook secret); staff tokens
                do not work
  staff         any signed-in agent, manager or admin
  team          who may open the object: staff of its team (agents, managers), admins
  own           the object is one agent's (scorecard, QA review, recompute job, check-in): that
                agent, managers of their team (any manager for jobs), admins
  manager       managers and admins (desk-wide configuration and dashboards scoped inside)
  manager_team  managers of the object's team, admins
  job           a recompute job: the staff member who asked for it, any manager, admins
  admin         admins only (the Django admin)
  recipient     the one staff member a notification is for (nobody else, admins included)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("anon", "customer", "agent_a", "agent_b", "manager_a", "admin")
ROLE_TEAM = {"agent_a": "A", "agent_b": "B", "manager_a": "A"}


@dataclass(frozen=True)
class Op:
    route: str  # the URL pattern as the resolver spells it (prefixes joined)
    method: str
    who: str
    obj: str | None = None  # attribute of tests.security.world.Side filling the path
    ok: int | dict[str, int] = 200  # status when allowed (per role when a dict)
    denied: int = 404  # signed-in staff who may not
    # manager_team: staff of the object's team who may see it but lack the role (default: denied)
    denied_role: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Tables a safe (GET) request may write when allowed: e.g. presence on the conversation page.
    writes: tuple[str, ...] = ()
    api: bool = False
    note: str = ""


def _api(route: str, method: str, who: str, obj: str | None = None, **kw: Any) -> Op:
    return Op(route=route, method=method, who=who, obj=obj, api=True, **kw)


def _page(route: str, method: str, who: str, obj: str | None = None, **kw: Any) -> Op:
    return Op(route=route, method=method, who=who, obj=obj, **kw)


C = "api/v1/conversations/<int:pk>/"
W = "conversations/<int:pk>/"
PRESENCE = ("tickets.conversationviewer",)

OPS: list[Op] = [
    # --- Public pages ------------------------------------------------------------------------------
    _page("healthz", "GET", "public"),
    _page("login/", "GET", "public", ok={"anon": 200, "customer": 200, "*": 302}),
    _page("logout/", "POST", "public", ok=302, note="ends the caller's own session only"),
    _page("api/schema/", "GET", "public"),
    _page("api/docs/", "GET", "public"),
    _page("chat/", "GET", "public"),
    _page("chat/", "POST", "public", ok=302, note="no session yet: back to the start form"),
    _page("chat/transcript/", "GET", "public", ok=204, note="no chat session: nothing"),
    _page("chat/end/", "POST", "public", ok=302),
    _page("widget/<str:key>.js", "GET", "public", obj="widget"),
    _page("widget/<str:key>/", "GET", "public", obj="widget"),
    _page("widget/<str:key>/", "POST", "public", obj="widget", ok=302, note="no session yet"),
    _page("widget/<str:key>/transcript/", "GET", "public", obj="widget", ok=204),
    _page("widget/<str:key>/end/", "POST", "public", obj="widget", ok=302),
    # --- Survey links (customer) -------------------------------------------------------------------
    _page("s/<str:token>/", "GET", "token", obj="token"),
    _page("s/<str:token>/", "POST", "token", obj="token", ok=302, data={"resolved": "yes"}),
    _page("s/<str:token>/opened/", "POST", "token", obj="token", ok=204),
    # Only a survey sent in a chat transcript has inline questions; the world's went by email
    # (tests/surveys/test_every_channel.py covers a chat survey's inline page).
    _page("s/<str:token>/inline/", "GET", "token", obj="token", ok=404),
    _page("s/<str:token>/inline/", "POST", "token", obj="token", ok=404, data={"resolved": "no"}),
    _page("s/<str:token>/unsubscribe/", "GET", "token", obj="token"),
    _page("s/<str:token>/unsubscribe/", "POST", "token", obj="token"),
    # --- Inbound API (channels) --------------------------------------------------------------------
    _api("api/v1/inbound/email/", "POST", "channel"),
    _api("api/v1/inbound/chat/", "POST", "channel"),
    _api("api/v1/inbound/social/", "POST", "channel"),
    _api("api/v1/inbound/phone/", "POST", "channel"),
    _api(
        "api/v1/inbound/queue/<int:pk>/",
        "GET",
        "channel",
        obj="inbound_item",
        note="the accepting channel's own rows only (another channel: 404)",
    ),
    # --- Staff API ---------------------------------------------------------------------------------
    _api("api/v1/conversations/", "GET", "staff"),
    _api(
        "api/v1/conversations/take-next/",
        "POST",
        "staff",
        ok={"admin": 404, "*": 200},
        note="assigns the caller the oldest unassigned conversation of their own teams; "
        "admins are in no team: nothing to take",
    ),
    _api("api/v1/conversations/", "POST", "staff", ok=400, note="no body: refused"),
    _api(C, "GET", "team", "conversation"),
    _api(C + "calls/", "POST", "team", "conversation", ok=400),
    _api(C, "PATCH", "team", "conversation", ok=400, note="nothing to change: refused"),
    _api(C + "replies/", "POST", "team", "conversation", ok=400),
    _api(C + "solve/", "POST", "team", "conversation"),
    _api(C + "reopen/", "POST", "team", "conversation", ok=409, note="not solved: refused"),
    _api(C + "pending/", "POST", "team", "conversation"),
    _api(C + "assign/", "POST", "team", "conversation", ok=400),
    _api("api/v1/messages/<int:pk>/move/", "POST", "team", "message", ok=400),
    _api("api/v1/customers/", "GET", "staff", note="customers with a visible conversation"),
    _api("api/v1/customers/<int:pk>/", "GET", "team", "customer"),
    _api("api/v1/customers/<int:pk>/", "PATCH", "team", "customer", note="empty: no change"),
    _api("api/v1/customers/<int:pk>/merge/", "POST", "team", "customer", ok=400),
    _api("api/v1/customers/<int:pk>/identities/", "POST", "team", "customer", ok=400),
    _api("api/v1/merges/<int:pk>/undo/", "POST", "team", "merge"),
    _api("api/v1/customers/<int:pk>/erase/", "POST", "admin", "customer", denied=403),
    _api(
        "api/v1/customers/<int:pk>/export/",
        "GET",
        "admin",
        "customer",
        denied=403,
        writes=("supportdesk.auditentry",),
        note="each export is audited",
    ),
    _api("api/v1/notifications/", "GET", "staff", note="the caller's own"),
    _api("api/v1/notifications/read/", "POST", "staff", ok=400, note='needs "ids" or "all"'),
    _api("api/v1/surveys/responses/", "GET", "staff"),
    _api("api/v1/mailboxes/", "GET", "admin", denied=403),
    _api("api/v1/channels/", "GET", "staff"),
    _api("api/v1/scorecards/", "GET", "staff", ok={"*": 400}, note="from/to are required"),
    _api("api/v1/scorecards/recompute/", "POST", "manager", ok=400, denied=403),
    _api("api/v1/tasks/<int:pk>/", "GET", "job", "job"),
    # --- Workspace pages ---------------------------------------------------------------------------
    _page("", "GET", "staff"),
    _page("notifications/", "GET", "staff"),
    _page("notifications/", "POST", "staff", ok=302, note="marks the caller's own as read"),
    _page("notifications/badge/", "GET", "staff", note="the bell, polled"),
    _page("notifications/settings/", "GET", "staff"),
    _page("notifications/settings/", "POST", "staff", ok=400, note="no choice given"),
    _page(
        "notifications/<int:pk>/open/",
        "GET",
        "recipient",
        "notification",
        ok=302,
        writes=("supportdesk.notification",),
        note="marks it read, then goes to the conversation",
    ),
    _page(
        W + "mentions/",
        "GET",
        "team",
        "conversation",
        note="@-mention autocomplete: who may open it",
    ),
    _page("audit/", "GET", "manager", denied=403, note="managers: entries about their teams"),
    # --- Email wording: templates and mailbox sending settings (admins), own signature (staff) --
    _page("settings/email-templates/", "GET", "admin", denied=403),
    _page("settings/email-templates/<str:key>/", "GET", "admin", "template", denied=403),
    _page(
        "settings/email-templates/<str:key>/",
        "POST",
        "admin",
        "template",
        ok=400,
        denied=403,
        note="empty form: refused, nothing stored",
    ),
    _page("settings/email-templates/<str:key>/preview/", "POST", "admin", "template", denied=403),
    _page("settings/survey-page/", "GET", "admin", denied=403),
    _page(
        "settings/survey-page/",
        "POST",
        "admin",
        ok=400,
        denied=403,
        note="empty form: refused, nothing stored",
    ),
    _page("settings/survey-page/preview/", "POST", "admin", denied=403),
    _page("settings/signature/", "GET", "staff"),
    _page("settings/signature/", "POST", "staff", ok=302, note="the caller's own signature"),
    _page("settings/signature/preview/", "POST", "staff"),
    _page("settings/sending/", "GET", "admin", denied=403),
    _page("settings/sending/<int:pk>/", "GET", "admin", "mail_channel", denied=403),
    _page("settings/sending/<int:pk>/", "POST", "admin", "mail_channel", ok=302, denied=403),
    # --- Mailboxes (admin pages) ----------------------------------------------------------------
    _page("mailboxes/", "GET", "admin", denied=403),
    _page("mailboxes/new/", "GET", "admin", denied=403),
    _page("mailboxes/new/", "POST", "admin", ok=400, denied=403, note="empty form: refused"),
    _page("mailboxes/oauth/callback/", "GET", "admin", ok=400, denied=403, note="no flow started"),
    _page("mailboxes/<int:pk>/", "GET", "admin", "mailbox", denied=403),
    _page("mailboxes/<int:pk>/", "POST", "admin", "mailbox", ok=400, denied=403),
    _page("mailboxes/<int:pk>/test/", "POST", "admin", "mailbox", ok=302, denied=403),
    _page("mailboxes/<int:pk>/poll/", "POST", "admin", "mailbox", ok=302, denied=403),
    _page(
        "mailboxes/<int:pk>/oauth/",
        "POST",
        "admin",
        "mailbox",
        ok=302,
        denied=403,
        note="a password mailbox: back to its page",
    ),
    _page("settings/channels/", "GET", "admin", denied=403),
    _page("settings/channels/<int:pk>/", "POST", "admin", "mail_channel", ok=302, denied=403),
    _page(
        "settings/channels/<int:pk>/rotate-secret/",
        "POST",
        "admin",
        "mail_channel",
        note="the page again, the new secret shown once",
        denied=403,
    ),
    # --- Business hours, promises, availability, routing, rules ----------------------------------
    _api("api/v1/hours/", "GET", "staff"),
    _api(
        "api/v1/hours/",
        "PUT",
        "admin",
        denied=403,
        data={"team": None, "time_zone": "UTC", "week": {"mon": [["09:00", "17:00"]]}},
        note="the desk's hours; a manager sets their own teams' hours",
    ),
    _api("api/v1/promises/", "GET", "staff"),
    _api(
        "api/v1/promises/",
        "PUT",
        "admin",
        denied=403,
        data={"channel": "email", "priority": "", "reply_seconds": 3600},
    ),
    _api("api/v1/availability/", "GET", "staff"),
    _api("api/v1/availability/", "POST", "staff", data={"status": "busy"}, note="their own"),
    _api(
        "api/v1/teams/<int:pk>/routing/",
        "PUT",
        "manager_team",
        "team",
        denied=403,
        denied_role=403,
        data={"mode": "round_robin", "cap": 5},
    ),
    _api("api/v1/rules/", "GET", "staff"),
    _api(
        "api/v1/rules/",
        "POST",
        "manager",
        ok=201,
        denied=403,
        data={"name": "VIP", "conditions": {"words": ["vip"]}, "actions": {"priority": "high"}},
    ),
    _api(
        "api/v1/rules/dry-run/",
        "POST",
        "manager",
        denied=403,
        data={"conditions": {"words": ["vip"]}, "actions": {"priority": "high"}},
    ),
    _page("settings/hours/", "GET", "manager", denied=403),
    _page("settings/rules/", "GET", "manager", denied=403),
    _page("settings/rules/<int:pk>/", "GET", "manager", "routing_rule", denied=403),
    _page(
        "settings/rules/<int:pk>/action/",
        "POST",
        "manager",
        "routing_rule",
        ok=302,
        denied=403,
        data={"action": "down"},
    ),
    _page(
        "availability/", "GET", "manager", denied=403, note="agents set theirs on their start page"
    ),
    # --- Settings (admins) ----------------------------------------------------------------------
    _page("settings/", "GET", "admin", denied=403),
    _page("settings/surveys/", "GET", "admin", denied=403),
    _page("settings/surveys/", "POST", "admin", ok=400, denied=403, note="empty form: refused"),
    _page("settings/webhook-hosts/", "GET", "admin", denied=403),
    _page("settings/webhook-hosts/", "POST", "admin", ok=400, denied=403),
    _page(
        "settings/webhook-hosts/<int:pk>/remove/",
        "POST",
        "admin",
        "webhook_host",
        ok=302,
        denied=403,
    ),
    # --- Staff and teams (accounts; admins only) ------------------------------------------------
    _page("settings/staff/", "GET", "admin", denied=403),
    _page(
        "settings/staff/invite/",
        "POST",
        "admin",
        ok=302,
        denied=403,
        data={"email": "new.person@desk.example", "role": "agent"},
    ),
    _page("settings/staff/<int:pk>/", "GET", "admin", "agent", denied=403),
    _page(
        "settings/staff/<int:pk>/",
        "POST",
        "admin",
        "agent",
        ok=302,
        denied=403,
        data={"role": "manager"},
    ),
    _page("settings/staff/<int:pk>/deactivate/", "POST", "admin", "agent", ok=302, denied=403),
    _page("settings/staff/<int:pk>/reactivate/", "POST", "admin", "agent", ok=302, denied=403),
    _page("settings/staff/<int:pk>/token/", "POST", "admin", "agent", denied=403),
    _page("settings/teams/", "POST", "admin", ok=302, denied=403, data={"name": "New team"}),
    _page(
        "settings/teams/<int:pk>/",
        "POST",
        "admin",
        "team",
        ok=302,
        denied=403,
        data={"name": "Renamed team"},
    ),
    _page("conversations/take-next/", "POST", "staff", ok=302),
    _page(W, "GET", "team", "conversation", writes=PRESENCE),
    _page(W + "reply/", "POST", "team", "conversation", ok=400),
    _page(
        W + "take/",
        "POST",
        "team",
        "conversation",
        ok={"admin": 400, "*": 302},
        note="admins are in no team",
    ),
    _page(W + "pending/", "POST", "team", "conversation", ok=302),
    _page(W + "solve/", "POST", "team", "conversation", ok=302),
    _page(W + "reopen/", "POST", "team", "conversation", ok=409, note="not solved: refused"),
    _page(W + "assign/", "POST", "team", "conversation", ok=302, note="nothing chosen: no change"),
    _page(W + "presence/", "POST", "team", "conversation"),
    _page(W + "presence/leave/", "POST", "team", "conversation", ok=204),
    _page("messages/<int:pk>/move/", "POST", "team", "message", ok=400),
    _page("messages/<int:pk>/html/", "GET", "team", "message"),
    _page("attachments/<int:pk>/", "GET", "team", "attachment"),
    _page("conversations/new/", "GET", "staff"),
    _page("conversations/new/", "POST", "staff", ok=400),
    _page(W + "calls/", "POST", "team", "conversation", ok=400),
    _page("customers/", "GET", "staff", note="customers with a visible conversation"),
    _page("customers/new/", "GET", "staff"),
    _page("customers/new/", "POST", "staff", ok=400),
    _page("customers/<int:pk>/", "GET", "team", "customer"),
    _page("customers/<int:pk>/edit/", "POST", "team", "customer", ok=302, note="empty: no change"),
    _page("customers/<int:pk>/calls/", "POST", "team", "customer", ok=400),
    _page("lookup/", "GET", "staff", ok=400, note="no phone or email"),
    _page("customers/<int:pk>/identities/", "POST", "team", "customer", ok=400),
    _page(
        "customers/<int:pk>/language/",
        "POST",
        "team",
        "customer",
        ok=400,
        note="no conversation given: refused, nothing changed",
    ),
    _page("customers/<int:pk>/merge/", "GET", "team", "customer", ok=400),
    _page("customers/<int:pk>/merge/", "POST", "team", "customer", ok=400),
    _page("merges/<int:pk>/undo/", "POST", "team", "merge", ok=302, note="from the customer page"),
    _page(
        "customers/<int:pk>/erase/",
        "POST",
        "admin",
        "customer",
        ok=400,
        denied=403,
        note="no typed confirmation: refused, nothing changed",
    ),
    _page(
        "customers/<int:pk>/export/",
        "GET",
        "admin",
        "customer",
        denied=403,
        writes=("supportdesk.auditentry",),
        note="each export is audited",
    ),
    _page("privacy/retention/", "GET", "admin", denied=403),
    _page("privacy/retention/", "POST", "admin", ok=302, denied=403, note="empty: no change"),
    # --- Triage ------------------------------------------------------------------------------------
    _page(W + "triage/", "POST", "team", "conversation", ok=400, note="no priority: refused"),
    _page(W + "spam/", "POST", "team", "conversation", ok=400, data={"version": "x"}),
    _page(W + "not-spam/", "POST", "team", "conversation", ok=400, data={"version": "x"}),
    _page(W + "macro/", "POST", "team", "conversation", ok=400, note="no macro chosen"),
    _page(
        "conversations/bulk/",
        "POST",
        "staff",
        ok=302,
        note="nothing selected: back to the queue; rows of other teams are never touched",
    ),
    _page("views/", "POST", "staff", ok=302, note="no name: back to the queue"),
    _page("views/delete/", "POST", "staff", ok=400, note="only the caller's own views"),
    _page("tags/", "GET", "staff"),
    _page("tags/", "POST", "manager", ok=302, denied=403, note="no name: back to the list"),
    _page("tags/<int:pk>/", "POST", "manager", "tag", ok=400, denied=403),
    # --- Saved replies and macros (managers and admins) -----------------------------------------
    _page("saved-replies/", "GET", "manager", denied=403),
    _page("saved-replies/", "POST", "manager", ok=400, denied=403, note="empty form: refused"),
    _page("saved-replies/<int:pk>/", "GET", "manager", "saved_reply", denied=403),
    _page("saved-replies/<int:pk>/", "POST", "manager", "saved_reply", ok=400, denied=403),
    _page(
        "saved-replies/<int:pk>/delete/",
        "POST",
        "manager",
        "saved_reply",
        ok=302,
        denied=403,
    ),
    # --- Survey pages for staff --------------------------------------------------------------------
    _page("surveys/responses/", "GET", "staff"),
    _page("surveys/me/", "GET", "staff"),
    _page("surveys/follow-ups/", "GET", "manager"),
    _page("surveys/follow-ups/<int:pk>/close/", "POST", "manager_team", "follow_up", ok=302),
    # --- Dashboards and scorecards -----------------------------------------------------------------
    _page("dashboard/", "GET", "manager"),
    _page("dashboard/drill/", "GET", "manager", ok=400, note="which metric: required"),
    _page("dashboard/drill.csv", "GET", "manager", ok=400),
    _page("dashboard/export.csv", "GET", "manager"),
    _page("dashboard/integrity/", "GET", "manager"),
    _page("dashboard/targets/", "POST", "manager", ok=400),
    _page("dashboard/recompute/", "POST", "manager", ok=400),
    _page("dashboard/recompute/<int:pk>/", "GET", "job", "job"),
    _page("dashboard/agents/<int:pk>/", "GET", "own", "agent"),
    _page("scorecard/", "GET", "staff", ok=302, note="redirects to the caller's own agent page"),
    # --- QA, ideas, cancellations, check-ins, pulse ------------------------------------------------
    _page("qa/", "GET", "staff"),
    _page("qa/reviews/<int:pk>/", "GET", "own", "review", note="agent, reviewer, team managers"),
    _page("qa/reviews/<int:pk>/submit/", "POST", "own", "review", ok=400),
    _page("qa/reviews/<int:pk>/respond/", "POST", "own", "review", ok=400),
    _page("qa/reviews/<int:pk>/replace/", "POST", "own", "review", ok=400),
    _page("qa/rubric/", "GET", "manager", denied=403),
    _page("qa/rubric/", "POST", "manager", ok=400, denied=403),
    _page("qa/calibrations/", "GET", "staff"),
    _page("qa/calibrations/", "POST", "manager", ok=400, denied=403),
    _page("qa/calibrations/<int:pk>/", "GET", "manager_team", "calibration"),
    _page("qa/disagreements/", "GET", "manager", denied=403),
    _page("ideas/", "GET", "staff"),
    _page("ideas/<int:pk>/", "GET", "team", "idea"),
    _page("ideas/<int:pk>/status/", "POST", "team", "idea", ok=400),
    _page("ideas/<int:pk>/notify/", "POST", "manager_team", "idea", ok=400, denied_role=403),
    _page("ideas/log/<int:message_id>/", "GET", "team", "message"),
    _page("ideas/log/<int:message_id>/", "POST", "team", "message", ok=400),
    _page("cancellations/", "GET", "manager", denied=403),
    _page("cancellations/reasons/", "POST", "manager", ok=400, denied=403),
    _page("conversations/<int:conversation_id>/cancellation/", "GET", "team", "conversation"),
    _page(
        "conversations/<int:conversation_id>/cancellation/", "POST", "team", "conversation", ok=400
    ),
    _page("checkins/", "GET", "staff"),
    _page("checkins/<int:pk>/", "POST", "own", "checkin", ok=400),
    _page("checkins/rules/<int:pk>/", "POST", "manager", "rule", ok=400, denied=403),
    _page("pulse/", "GET", "staff"),
    _page("pulse/", "POST", "staff", ok=404, note="no pulse week open: 404 for everyone"),
]

# Django's admin: every route is admin-only (AdminSite.admin_view); checked by rule, GET only.
ADMIN_PREFIX = "admin/"
# django-anymail's provider webhooks: authenticated by the provider's secret (basic auth).
ANYMAIL_PREFIX = "anymail/"
# django-allauth's own pages (sign-in stages, password reset, second factor, single sign-on):
# tests/security/test_authz_matrix.py::test_account_pages_need_a_signed_in_member_of_staff.
ACCOUNTS_PREFIX = "accounts/"


def op_key(op: Op) -> tuple[str, str]:
    return (op.route, op.method)


def allowed(who: str, role: str, team: str | None) -> bool:
    """Whether ``role`` may use a route of rule ``who`` on an object of ``team``."""
    if who == "public":
        return True
    if who == "token":
        return role != "anon" and (role != "customer" or team == "A")
    if who == "channel":
        return False  # no user role holds a channel token; checked separately
    if role in ("anon", "customer"):
        return False
    if who == "recipient":
        return (role == "agent_a" and team == "A") or (role == "agent_b" and team == "B")
    if who == "staff":
        return True
    if who == "admin":
        return role == "admin"
    if who == "manager":
        return role in ("manager_a", "admin")
    if role == "admin":
        return True
    if who == "team":
        return ROLE_TEAM[role] == team
    if who == "manager_team":
        return role == "manager_a" and team == "A"
    if who == "job":
        return role in ("manager_a", f"agent_{team.lower()}")
    if who == "own":
        return (
            (role == "agent_a" and team == "A")
            or (role == "agent_b" and team == "B")
            or (role == "manager_a" and team == "A")
        )
    raise AssertionError(f"unknown rule {who!r}")
