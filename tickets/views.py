"""The agent workspace (queue, conversation page) and the customer's /chat/ page.

Views validate the request with a form, call one service, and redirect or render; reads come from
``tickets.selectors``. Domain refusals (``ApplicationError``) are shown to the agent as a message
with the HTTP status the error carries; nothing is half-stored because each service is atomic.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk import extensions
from supportdesk.errors import ApplicationError
from supportdesk.http import HtmxRequest, StaffRequest
from supportdesk.mailtemplates import SIGNATURE_VARIABLES
from supportdesk.security import allow_framing_by, keep_own_csp, ratelimit
from tickets import selectors, services
from tickets.emails import sanitize_html
from tickets.forms import (
    AssignForm,
    ChannelSendingForm,
    ChatMessageForm,
    ChatStartForm,
    LinkIdentityForm,
    MergeForm,
    MoveForm,
    QueueFilterForm,
    ReplyForm,
)
from tickets.inline import inline_frame_url
from tickets.models import Channel, ChannelKind, Conversation, Customer, Message

OUTCOME_LABELS = {
    "resolved": "Customer said resolved",
    "partly": "Customer said partly resolved",
    "not_resolved": "Customer said not resolved",
    "no_answer": "No answer to the survey",
    "no_survey": "No survey",
}
# The frame that shows an email's HTML: nothing in it may run, load or navigate.
EMAIL_FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
ATTACHMENT_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


# --- Queue ------------------------------------------------------------------------------------------


@login_required
@require_GET
def queue(request: StaffRequest) -> HttpResponse:
    """The agent's start page: queue views with counts, filters, search, keyset pages.

    An htmx poll (every 15 s on the first page) re-renders the ``queue`` partial only.
    """
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid queue filter: " + form.errors.as_text())
    data = form.cleaned_data
    views = {v.key for v in selectors.QUEUE_VIEWS}
    view = data["view"] if data["view"] in views else "open"
    try:
        page = selectors.queue_page_for_user(
            user=request.user,
            view=view,
            channel=data["channel"],
            status=data["status"],
            team=data["team"],
            assignee=data["assignee"],
            search=data["q"],
            cursor=data["after"],
        )
    except ApplicationError as exc:
        return HttpResponseBadRequest(str(exc))
    params = request.GET.copy()
    params.pop("after", None)
    params.pop("view", None)
    context = {
        "form": form,
        "page": page,
        "view": view,
        "views": [(v, page.counts[v.key]) for v in selectors.QUEUE_VIEWS],
        "filter_query": params.urlencode(),
        "first_page": not data["after"],
        **selectors.queue_filter_choices(user=request.user),
    }
    template = "home.html#queue" if request.htmx else "home.html"
    return render(request, template, context)


# --- Conversation page -------------------------------------------------------------------------


def _conversation_context(request: StaffRequest, conversation: Conversation) -> dict[str, Any]:
    timeline = selectors.conversation_timeline(conversation=conversation)
    panel = selectors.customer_panel_data(user=request.user, conversation=conversation)
    message_ids = [m.pk for m in conversation.messages.all()]
    last_inbound = next(
        (
            m
            for m in reversed(conversation.messages.all())
            if m.direction == Message.Direction.INBOUND and not m.automated
        ),
        None,
    )
    identity_kinds = {identity.kind for identity in panel["identities"]}
    reply_channels = [
        (kind, label)
        for kind, label in (("email", "Email"), ("chat", "Chat"), ("social", "Social"))
        if kind in identity_kinds
    ]
    last_used = last_inbound.channel_kind if last_inbound else ""
    default_channel = last_used or "email"
    if default_channel == ChannelKind.PHONE or default_channel not in identity_kinds:
        default_channel = reply_channels[0][0] if reply_channels else "email"
    outcomes = extensions.annotate(
        "conversation.outcome", [c.pk for c in panel["other_conversations"]]
    )
    for other in panel["other_conversations"]:
        other.outcome = outcomes.get(other.pk)
        other.outcome_label = OUTCOME_LABELS.get(other.outcome or "", "—")
    saved_replies = [
        (
            reply,
            services.saved_reply_render(
                saved_reply=reply, customer=conversation.customer, agent=request.user
            ),
        )
        for reply in selectors.saved_reply_list()
    ]
    return {
        "conversation": conversation,
        "customer": conversation.customer,
        "timeline": timeline,
        "seen_up_to": max(message_ids, default=0),
        "reply_channels": reply_channels,
        "default_channel": default_channel,
        "last_used_channel": last_used,
        "saved_replies": saved_replies,
        "viewers": selectors.conversation_viewers(conversation=conversation, exclude=request.user),
        "agents": selectors.conversation_assignable_agents(conversation=conversation),
        "teams": selectors.team_list_for_user(user=request.user),
        "move_targets": [c for c in panel["other_conversations"] if c.is_active],
        "link_form": LinkIdentityForm(),
        "participants": selectors.conversation_participants(conversation=conversation),
        "cc_ticked": set(),
        "attachment_max_bytes": settings.ATTACHMENT_MAX_BYTES,
        **panel,
    }


@login_required
@require_GET
def conversation_detail(request: StaffRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk, for_detail=True)
    services.conversation_presence_touch(conversation=conversation, user=request.user)
    context = _conversation_context(request, conversation)
    context["reply_form"] = ReplyForm(initial={"channel": context["default_channel"]})
    return render(request, "tickets/conversation.html", context)


def _back(pk: int) -> HttpResponse:
    return redirect("workspace:conversation", pk=pk)


def _refused(request: StaffRequest, pk: int, exc: ApplicationError) -> HttpResponse:
    """A refusal on a plain form post: say why on the conversation page, with the error's status."""
    messages.error(request, str(exc))
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk, for_detail=True)
    context = _conversation_context(request, conversation)
    context["reply_form"] = ReplyForm(initial={"channel": context["default_channel"]})
    return render(request, "tickets/conversation.html", context, status=exc.status)


@login_required
@require_POST
def conversation_reply(request: StaffRequest, pk: int) -> HttpResponse:
    """Send a reply or add an internal note. Held (409) if the customer wrote since page load."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    participants = selectors.conversation_participants(conversation=conversation)
    form = ReplyForm(request.POST, participants=[p.email for p in participants])
    if not form.is_valid():
        error = (
            "Write something before sending."
            if "body" in form.errors
            else " ".join(str(e) for errors in form.errors.values() for e in errors)
        )
        return _reply_refused(request, pk, form, error, status=400)
    data = form.cleaned_data
    cc, bcc = form.copies()
    files = request.FILES.getlist("attachments")
    limit = settings.ATTACHMENT_MAX_BYTES
    too_big = next((f for f in files if (f.size or 0) > limit), None)
    if too_big is not None:
        return _reply_refused(
            request,
            pk,
            form,
            f"{too_big.name} is {filesizeformat(too_big.size or 0)}; files up to "
            f"{filesizeformat(limit)} can be attached. Nothing was sent.",
            status=413,
        )
    try:
        message = services.conversation_reply(
            conversation=conversation,
            author=request.user,
            body=data["body"],
            channel_kind=None if data["internal"] else (data["channel"] or None),
            internal=data["internal"],
            seen_up_to=data["seen_up_to"],
            cc=[] if data["internal"] else cc,
            bcc=[] if data["internal"] else bcc,
            attachments=[
                services.OutboundFile(
                    filename=f.name or "attachment",
                    content_type=f.content_type or "application/octet-stream",
                    content=f.read(),
                )
                for f in files
            ],
        )
    except services.ReplyHeld as exc:
        return _reply_refused(request, pk, form, str(exc), status=409, held=True)
    except ApplicationError as exc:
        return _reply_refused(request, pk, form, str(exc), status=exc.status)
    if message.direction == Message.Direction.NOTE:
        messages.success(request, "Internal note added.")
    else:
        messages.success(request, f"Reply queued on {message.channel_kind}.")
    return _back(pk)


def _reply_refused(
    request: StaffRequest,
    pk: int,
    form: ReplyForm,
    error: str,
    *,
    status: int,
    held: bool = False,
) -> HttpResponse:
    """Re-render the page with the draft kept, the reason, and (when held) the new message."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk, for_detail=True)
    context = _conversation_context(request, conversation)
    context["reply_form"] = ReplyForm(
        initial={
            "body": request.POST.get("body", ""),
            "channel": request.POST.get("channel") or context["default_channel"],
            "cc_more": request.POST.get("cc_more", ""),
            "bcc": request.POST.get("bcc", ""),
        }
    )
    context["cc_ticked"] = set(request.POST.getlist("cc"))
    context["reply_error"] = error
    context["reply_held"] = held
    return render(request, "tickets/conversation.html", context, status=status)


def _posted_version(request: StaffRequest) -> int | None:
    """The conversation ``version`` the page was rendered with (every action form sends it).

    A change made by someone else since then makes the service refuse with 409 (StaleVersion).
    """
    raw = request.POST.get("version", "")
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


def _status_action(request: StaffRequest, pk: int, action: str) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    version = _posted_version(request)
    try:
        if action == "take":
            services.conversation_assign(
                conversation=conversation,
                actor=request.user,
                agent=request.user,
                expected_version=version,
            )
            messages.success(request, "You took this conversation.")
        elif action == "pending":
            services.conversation_set_pending(
                conversation=conversation, actor=request.user, expected_version=version
            )
            messages.success(request, "Waiting on the customer.")
        elif action == "solve":
            services.conversation_solve(
                conversation=conversation, actor=request.user, expected_version=version
            )
            messages.success(request, "Solved. The customer will be asked whether it is.")
        elif action == "reopen":
            services.conversation_reopen(
                conversation=conversation, actor=request.user, expected_version=version
            )
            messages.success(request, "Reopened.")
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    return _back(pk)


@login_required
@require_POST
def conversation_take(request: StaffRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "take")


@login_required
@require_POST
def conversation_pending(request: StaffRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "pending")


@login_required
@require_POST
def conversation_solve(request: StaffRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "solve")


@login_required
@require_POST
def conversation_reopen(request: StaffRequest, pk: int) -> HttpResponse:
    return _status_action(request, pk, "reopen")


@login_required
@require_POST
def conversation_assign(request: StaffRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = AssignForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose an agent or a team.")
    agent_ref, team_id = form.cleaned_data["agent"], form.cleaned_data["team"]
    agent = None
    if agent_ref and agent_ref != "none":
        agent = selectors.staff_get_by_ref(ref=agent_ref)
        if agent is None or not agent.is_active:
            return HttpResponseBadRequest("No such agent.")
    team = None
    if team_id is not None:
        teams = {t.pk: t for t in selectors.team_list_for_user(user=request.user)}
        team = teams.get(team_id)
        if team is None:
            return HttpResponseBadRequest(services.TEAM_NOT_YOURS)
    try:
        services.conversation_assign(
            conversation=conversation,
            actor=request.user,
            agent=agent,
            team=team,
            unassign=agent_ref == "none",
            expected_version=_posted_version(request),
        )
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    messages.success(request, "Assignment saved.")
    return _back(pk)


@login_required
@require_POST
def conversation_take_next(request: StaffRequest) -> HttpResponse:
    """The queue's "Take next": the oldest unassigned new/open conversation of your teams."""
    taken = services.conversation_take_next(agent=request.user)
    if taken is None:
        messages.info(request, "Nothing to take: every new or open conversation has an agent.")
        return redirect("home")
    messages.success(request, "You took this conversation: it was next in your teams' queue.")
    return _back(taken.pk)


@login_required
@require_POST
def conversation_presence(request: StaffRequest, pk: int) -> HttpResponse:
    """The page's heartbeat: record presence, answer who else is here and whether the customer
    wrote since the page loaded (the htmx partial ``presence``)."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    services.conversation_presence_touch(
        conversation=conversation,
        user=request.user,
        replying=request.POST.get("replying") == "1",
    )
    try:
        seen_up_to = int(request.POST.get("seen_up_to", "0"))
    except ValueError:
        return HttpResponseBadRequest("seen_up_to must be a message id.")
    context = {
        "conversation": conversation,
        "viewers": selectors.conversation_viewers(conversation=conversation, exclude=request.user),
        "new_inbound": selectors.conversation_inbound_count_after(
            conversation=conversation, message_id=seen_up_to
        ),
    }
    return render(request, "tickets/conversation.html#presence", context)


@login_required
@require_POST
def conversation_presence_leave(request: StaffRequest, pk: int) -> HttpResponse:
    """The page was closed (sent by ``navigator.sendBeacon``): others stop seeing this agent."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    services.conversation_presence_leave(conversation=conversation, user=request.user)
    return HttpResponse(status=204)


# --- Messages -------------------------------------------------------------------------------------


@login_required
@require_POST
def message_move(request: StaffRequest, pk: int) -> HttpResponse:
    message = selectors.message_get_for_user_detail(user=request.user, pk=pk)
    form = MoveForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose the conversation to move the message to.")
    target = selectors.conversation_get_for_user(
        user=request.user, pk=form.cleaned_data["to_conversation"]
    )
    try:
        services.message_move(message=message, to_conversation=target, actor=request.user)
    except ApplicationError as exc:
        return _refused(request, message.conversation_id, exc)
    messages.success(request, f"Message moved to conversation #{target.pk}.")
    return _back(message.conversation_id)


@login_required
@require_GET
@xframe_options_sameorigin  # the one page framed by our own pages (everything else: DENY)
def message_html(request: StaffRequest, pk: int) -> HttpResponse:
    """An email's HTML, sanitised again, for a ``sandbox=""`` iframe with a CSP of its own that
    forbids every script, every load (no remote images) and every form."""
    message = selectors.message_get_for_user_detail(user=request.user, pk=pk)
    if not message.body_html:
        raise Http404("This message has no HTML part.")
    html = (
        '<!doctype html><html><head><meta charset="utf-8"><style>'
        "body{font:14px/1.5 system-ui,sans-serif;margin:8px;color:#1d2330;word-wrap:break-word}"
        "table{max-width:100%}</style></head><body>"
        + sanitize_html(message.body_html)
        + "</body></html>"
    )
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = EMAIL_FRAME_CSP
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return keep_own_csp(response)  # django-csp must not replace the stricter policy above


@login_required
@require_GET
def attachment_download(request: StaffRequest, pk: int) -> FileResponse:
    """Always a download, never rendered by the browser: the customer chose its name and type."""
    attachment = selectors.attachment_get_for_user(user=request.user, pk=pk)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The file of this attachment is missing.") from exc
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=attachment.filename or f"attachment-{attachment.pk}",
        content_type="application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # Were it ever rendered (a browser ignoring the headers above, or a proxy rewriting them),
    # an HTML or SVG file would run as a unique, script-less origin that loads nothing.
    response["Content-Security-Policy"] = ATTACHMENT_CSP
    return keep_own_csp(response)  # django-csp must not replace the stricter policy above


# --- Customers: link a handle, merge, undo ---------------------------------------------------------


@login_required
@require_POST
def customer_link_identity(request: StaffRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    form = LinkIdentityForm(request.POST)
    conversation_id = request.POST.get("conversation", "")
    if not form.is_valid() or not conversation_id.isdigit():
        return HttpResponseBadRequest("Choose a kind and write the handle.")
    kind, value = form.cleaned_data["kind"], form.cleaned_data["value"]
    try:
        services.identity_link(customer=customer, kind=kind, value=value, actor=request.user)
    except services.HandleTaken as exc:
        if selectors.customer_visible_to(user=request.user, pk=exc.holder_id):
            other = exc.holder_id
            messages.warning(
                request,
                f"{value} belongs to another customer (#{other}). Review and merge them below.",
            )
            url = reverse("workspace:customer-merge", args=[customer.pk])
            return redirect(f"{url}?other={other}&conversation={conversation_id}")
        return _refused(request, int(conversation_id), exc)
    except ApplicationError as exc:
        return _refused(request, int(conversation_id), exc)
    messages.success(request, f"Linked {value} to {customer}.")
    return _back(int(conversation_id))


@login_required
def customer_merge(request: StaffRequest, pk: int) -> HttpResponse:
    """GET: the confirmation (both customers side by side). POST: merge, then offer an undo."""
    target = selectors.customer_get_for_user(user=request.user, pk=pk)
    conversation_id = request.GET.get("conversation") or request.POST.get("conversation") or ""
    if not conversation_id.isdigit():
        return HttpResponseBadRequest("Open the merge from a conversation.")
    other: Customer | None
    if request.method == "POST":
        form = MergeForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest("Choose the customer to merge in.")
        other = selectors.customer_get_for_user(user=request.user, pk=form.cleaned_data["other"])
        try:
            merge = services.customer_merge(target=target, other=other, actor=request.user)
        except ApplicationError as exc:
            return _refused(request, int(conversation_id), exc)
        messages.success(
            request, f"Merged {merge.merged_name or f'customer #{other.pk}'} into {target}."
        )
        return _back(int(conversation_id))
    ref = request.GET.get("other", "") or request.GET.get("handle", "")
    other_id = selectors.customer_id_by_handle(handle=ref) if ref else None
    other = None
    if other_id is not None:
        # A customer the caller may not open answers exactly like no customer: no oracle.
        with contextlib.suppress(Http404):
            other = selectors.customer_get_for_user(user=request.user, pk=other_id)
    if other is None:
        messages.error(request, f"No customer has the handle {ref!r}." if ref else "Say who.")
        return _back(int(conversation_id))
    if other.pk == target.pk:
        messages.info(request, "That handle already belongs to this customer.")
        return _back(int(conversation_id))
    sides = [
        (c, selectors.customer_detail_data(user=request.user, customer=c)) for c in (target, other)
    ]
    return render(
        request,
        "tickets/merge_confirm.html",
        {"target": target, "other": other, "sides": sides, "conversation_id": conversation_id},
    )


@login_required
@require_POST
def merge_undo(request: StaffRequest, pk: int) -> HttpResponse:
    merge = selectors.customer_merge_get_for_user(user=request.user, pk=pk)
    conversation_id = request.POST.get("conversation", "")
    if not conversation_id.isdigit():
        return HttpResponseBadRequest("Undo a merge from a conversation.")
    try:
        services.customer_merge_undo(merge=merge, actor=request.user)
    except ApplicationError as exc:
        return _refused(request, int(conversation_id), exc)
    messages.success(request, "Merge undone: the other customer is separate again.")
    return _back(int(conversation_id))


# --- The customer's chat page and the embeddable widget ------------------------------------------

CHAT_SESSION_KEY = "chat_visitor"


def _chat_channel() -> Channel:
    channel = selectors.chat_channel_for_page()
    if channel is None:
        raise Http404("Chat is not set up on this desk.")
    return channel


def _widget_channel(key: str) -> Channel:
    channel = selectors.chat_channel_by_widget_key(key=key)
    if channel is None:
        raise Http404("No such chat widget.")
    return channel


def _session_key(widget: Channel | None) -> str:
    # Each widget keeps its own visitor session: two sites' widgets never share a chat.
    return CHAT_SESSION_KEY if widget is None else f"{CHAT_SESSION_KEY}:{widget.pk}"


def _chat_state(request: HttpRequest, widget: Channel | None = None) -> dict[str, str] | None:
    state = request.session.get(_session_key(widget))
    return state if isinstance(state, dict) and state.get("session") else None


def _chat_urls(widget: Channel | None) -> dict[str, str]:
    if widget is None:
        return {
            "page": reverse("workspace:chat"),
            "transcript": reverse("workspace:chat-transcript"),
            "end": reverse("workspace:chat-end"),
        }
    key = {"key": widget.widget_key}
    return {
        "page": reverse("widget:chat", kwargs=key),
        "transcript": reverse("widget:transcript", kwargs=key),
        "end": reverse("widget:end", kwargs=key),
    }


def _framed(response: HttpResponse, widget: Channel | None) -> HttpResponse:
    """A widget's pages may be framed by that channel's configured origins only."""
    if widget is not None:
        allow_framing_by(response, list(widget.widget_origins or []))
    return response


@ratelimit(key="ip", rate="30/m", method="POST", block=True)
def chat_page(request: HtmxRequest) -> HttpResponse:
    """``/chat/``: the visitor gives an email (or not) and writes; agent replies appear by polling.

    Messages go through ``services.inbound_chat``, the path every chat provider uses.
    """
    return _chat(request, _chat_channel(), widget=None)


@ratelimit(key="ip", rate="30/m", method="POST", block=True)
def widget_chat_page(request: HtmxRequest, key: str) -> HttpResponse:
    """``/widget/<key>/``: the chat of one chat channel, framed by the widget script on the
    channel's own site; it feeds that channel (and so its team)."""
    channel = _widget_channel(key)
    return _framed(_chat(request, channel, widget=channel), channel)


def _chat(request: HtmxRequest, channel: Channel, *, widget: Channel | None) -> HttpResponse:
    state = _chat_state(request, widget)
    urls = _chat_urls(widget)
    extra = {"urls": urls, "embedded": widget is not None}
    if request.method == "POST" and request.POST.get("start"):
        start = ChatStartForm(request.POST)
        if not start.is_valid():
            return render(request, "tickets/chat.html", {"start_form": start, **extra}, status=400)
        state = {
            "visitor": f"web-{secrets.token_urlsafe(16)}",
            "session": f"web-{secrets.token_urlsafe(16)}",
            "email": start.cleaned_data["email"] or "",
            "name": start.cleaned_data["name"] or "",
        }
        request.session[_session_key(widget)] = state
        return redirect(urls["page"])
    if request.method == "POST":
        if state is None:
            return redirect(urls["page"])
        form = ChatMessageForm(request.POST)
        if not form.is_valid():
            return _chat_render(request, channel, state, form, widget=widget, status=400)
        try:
            services.inbound_chat(
                channel=channel,
                external_id=f"web-{secrets.token_urlsafe(12)}",
                session_id=state["session"],
                visitor_id=state["visitor"],
                body=form.cleaned_data["body"],
                email=state.get("email", ""),
                email_verified=False,  # typed on a public page: a hint for the agent only
                name=state.get("name", ""),
            )
        except ApplicationError as exc:
            form.add_error("body", str(exc))
            return _chat_render(request, channel, state, form, widget=widget, status=exc.status)
        if request.htmx:
            return _chat_render(
                request, channel, state, ChatMessageForm(), widget=widget, partial=True
            )
        return redirect(urls["page"])
    if request.method != "GET":
        return HttpResponse(status=405)
    if state is None:
        return render(request, "tickets/chat.html", {"start_form": ChatStartForm(), **extra})
    return _chat_render(request, channel, state, ChatMessageForm(), widget=widget)


def _chat_render(
    request: HttpRequest,
    channel: Channel,
    state: dict[str, str],
    form: ChatMessageForm,
    *,
    widget: Channel | None = None,
    status: int = 200,
    partial: bool = False,
    acknowledge: bool = False,
) -> HttpResponse:
    transcript = selectors.chat_transcript(channel=channel, session_id=state["session"])
    if acknowledge:
        # Only the page's own POST poll is a read receipt; a GET never changes anything.
        services.chat_replies_mark_delivered(
            message_ids=[
                m.pk
                for m in transcript
                if m.direction == Message.Direction.OUTBOUND
                and m.delivery_state == Message.Delivery.QUEUED
            ]
        )
    lines = [(message, inline_frame_url(message)) for message in transcript]
    context = {
        "transcript": transcript,
        "lines": lines,
        "form": form,
        "state": state,
        "now": timezone.now(),
        "urls": _chat_urls(widget),
        "embedded": widget is not None,
    }
    template = "tickets/chat.html#transcript" if partial else "tickets/chat.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def chat_transcript(request: HttpRequest) -> HttpResponse:
    """The transcript of this visitor's session (htmx partial).

    The page polls with POST (CSRF-protected): the replies it shows count as delivered. A GET
    shows the same and changes nothing.
    """
    return _transcript(request, _chat_channel, widget=None)


@require_http_methods(["GET", "POST"])
def widget_transcript(request: HttpRequest, key: str) -> HttpResponse:
    channel = _widget_channel(key)
    return _framed(_transcript(request, lambda: channel, widget=channel), channel)


def _transcript(
    request: HttpRequest, channel_of: Callable[[], Channel], *, widget: Channel | None
) -> HttpResponse:
    state = _chat_state(request, widget)
    if state is None:
        return HttpResponse(status=204)
    return _chat_render(
        request,
        channel_of(),
        state,
        ChatMessageForm(),
        widget=widget,
        partial=True,
        acknowledge=request.method == "POST",
    )


@require_POST
def chat_end(request: HttpRequest) -> HttpResponse:
    request.session.pop(CHAT_SESSION_KEY, None)
    return redirect("workspace:chat")


@require_POST
def widget_end(request: HttpRequest, key: str) -> HttpResponse:
    channel = _widget_channel(key)
    request.session.pop(_session_key(channel), None)
    return _framed(redirect("widget:chat", key=key), channel)


WIDGET_SCRIPT = """(function () {
  "use strict";
  var src = %(src)s;
  var label = %(label)s;
  var close = %(close)s;
  if (document.getElementById("supportdesk-widget")) { return; }
  var box = document.createElement("div");
  box.id = "supportdesk-widget";
  box.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:2147483000;" +
    "font:15px/1.4 system-ui,sans-serif;";
  var button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "padding:12px 18px;border:0;border-radius:24px;background:#1f5fbf;" +
    "color:#fff;font:inherit;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25);";
  var frame = document.createElement("iframe");
  frame.title = label;
  frame.src = src;
  frame.hidden = true;
  frame.setAttribute("allow", "");
  function size() {
    var phone = window.innerWidth < 600;
    frame.style.cssText = "display:block;border:0;background:#fff;box-shadow:0 4px 24px " +
      "rgba(0,0,0,.3);" + (phone
        ? "position:fixed;left:0;right:0;bottom:0;top:60px;width:100vw;" +
          "height:calc(100vh - 60px);border-radius:0;"
        : "width:380px;height:560px;max-height:calc(100vh - 96px);border-radius:12px;" +
          "margin-bottom:12px;");
  }
  button.addEventListener("click", function () {
    var open = frame.hidden;
    frame.hidden = !open;
    if (open) { size(); } else { frame.style.display = "none"; }
    button.textContent = open ? close : label;
    button.setAttribute("aria-expanded", String(open));
    if (open && window.innerWidth < 600) {
      button.style.position = "fixed"; button.style.right = "16px"; button.style.top = "8px";
      button.style.bottom = "auto";
    } else { button.style.position = ""; button.style.top = ""; }
  });
  window.addEventListener("resize", function () { if (!frame.hidden) { size(); } });
  box.appendChild(frame);
  box.appendChild(button);
  (document.body || document.documentElement).appendChild(box);
})();
"""


@require_GET
def widget_script(request: HttpRequest, key: str) -> HttpResponse:
    """``/widget/<key>.js``: the snippet's script: a button that opens the channel's chat in a
    frame (full screen on a phone)."""
    channel = _widget_channel(key)
    src = settings.SITE_URL + reverse("widget:chat", kwargs={"key": channel.widget_key})
    body = WIDGET_SCRIPT % {
        "src": json.dumps(src),
        "label": json.dumps(str(_("Chat with us"))),
        "close": json.dumps(str(_("Close chat"))),
    }
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


# --- Sending settings of email channels (admins) ------------------------------------------------


def _require_admin(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins change how mailboxes send.")


@login_required
@require_GET
def channel_sending_list(request: StaffRequest) -> HttpResponse:
    """Every email channel with its sender name, signature and acknowledgement switch."""
    _require_admin(request)
    return render(
        request,
        "tickets/sending.html",
        {"channels": selectors.email_channel_list(), "desk_name": settings.DESK_NAME},
    )


@login_required
@require_http_methods(["GET", "POST"])
def channel_sending_edit(request: StaffRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    channel = next((c for c in selectors.email_channel_list() if c.pk == pk), None)
    if channel is None:
        raise Http404("No such email channel.")
    status = 200
    if request.method == "POST":
        form = ChannelSendingForm(request.POST)
        if form.is_valid():
            services.channel_mail_settings_update(
                channel=channel,
                from_name=form.cleaned_data["from_name"],
                signature=form.cleaned_data["signature"],
                acknowledge=form.cleaned_data["acknowledge"],
                actor=request.user,
            )
            messages.success(request, f"Sending settings of {channel.name} saved.")
            return redirect("workspace:sending")
        status = 400
    else:
        form = ChannelSendingForm(
            initial={
                "from_name": channel.from_name,
                "signature": channel.signature,
                "acknowledge": channel.acknowledge,
            }
        )
    agent = request.user
    from_name = form["from_name"].value() or settings.DESK_NAME
    context = {
        "channel": channel,
        "form": form,
        "from_preview": f"{agent.full_name or agent.email} via {from_name} "
        f"<{services.sender_address(channel)}>",
        "variables": sorted(SIGNATURE_VARIABLES.items()),
    }
    return render(request, "tickets/sending_edit.html", context, status=status)


# --- Channel survey switches and chat widgets (admins) ---------------------------------------------


def _require_channel_admin(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins change channels.")


@login_required
@require_GET
def channel_widget_list(request: StaffRequest) -> HttpResponse:
    """Every channel with its survey switch; chat channels with their widget snippet and the
    sites allowed to embed it."""
    _require_channel_admin(request)
    return _channel_widgets_page(request)


def _channel_widgets_page(request: StaffRequest, *, status: int = 200) -> HttpResponse:
    rows = [
        {
            "channel": channel,
            "snippet": (
                f'<script src="{settings.SITE_URL}/widget/{channel.widget_key}.js" async></script>'
                if channel.widget_key
                else ""
            ),
            "origins": "\n".join(channel.widget_origins or []),
        }
        for channel in selectors.channel_list_for_settings()
    ]
    return render(request, "tickets/channel_widgets.html", {"rows": rows}, status=status)


@login_required
@require_POST
def channel_widget_edit(request: StaffRequest, pk: int) -> HttpResponse:
    """Saves one channel's survey switch and, for a chat channel, its widget's sites. Bad sites
    change nothing (400 with the reason)."""
    _require_channel_admin(request)
    channel = next((c for c in selectors.channel_list_for_settings() if c.pk == pk), None)
    if channel is None:
        raise Http404("No such channel.")
    surveyed = request.POST.get("surveyed") == "on"
    try:
        if channel.kind == ChannelKind.CHAT:
            origins = [o for o in request.POST.get("origins", "").split() if o]
            if len(origins) > 20:
                raise ApplicationError("At most 20 sites may embed one widget.")
            services.channel_set_widget(channel=channel, origins=origins, surveyed=surveyed)
        else:
            services.channel_set_surveyed(channel=channel, surveyed=surveyed)
    except ApplicationError as exc:
        messages.error(request, f"{channel.name}: {exc.message}")
        return _channel_widgets_page(request, status=400)
    messages.success(request, f"Settings of {channel.name} saved.")
    return redirect("workspace:channel-widgets")
