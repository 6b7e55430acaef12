"""The agent workspace (queue, conversation page); the customer's /chat/ page is in
``tickets.views_chat``.

Views validate the request with a form, call one service, and redirect or render; reads come from
``tickets.selectors``. Domain refusals (``ApplicationError``) are shown to the agent as a message
with the HTTP status the error carries; nothing is half-stored because each service is atomic.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
)
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk import extensions
from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.languages import (
    language_choices,
)
from supportdesk.mailtemplates import SIGNATURE_VARIABLES
from supportdesk.security import keep_own_csp
from tickets import fragments, selectors, services
from tickets.customer_forms import CallLogForm
from tickets.emails import sanitize_html
from tickets.forms import (
    AssignForm,
    ChannelSendingForm,
    LinkIdentityForm,
    MergeForm,
    MoveForm,
    QueueFilterForm,
    ReplyForm,
)
from tickets.models import ChannelKind, Conversation, Customer, Message

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
    views = {v.key for v in selectors.QUEUE_VIEWS} | {"spam"}
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
            tag=data["tag"].strip(),
            priority=data["priority"],
            sort=data["sort"],
            # The 15-second poll reuses counts a few seconds old; a page load counts afresh.
            reuse_counts=bool(request.htmx),
        )
    except ApplicationError as exc:
        return HttpResponseBadRequest(str(exc))
    highlights = page.highlights or {}
    rows = list(
        zip(
            page.conversations,
            [
                [mark_safe(part) for part in html.split("<!--live-->")]
                for html in fragments.render_fragments(
                    "tickets/_queue_row.html",
                    [
                        (
                            fragments.queue_row_parts(c, highlights.get(c.pk)),
                            {"conversation": c, "highlight": highlights.get(c.pk)},
                        )
                        for c in page.conversations
                    ],
                )
            ],
            strict=True,
        )
    )
    params = request.GET.copy()
    params.pop("after", None)
    params.pop("view", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "view": view,
        "views": [(v, page.counts[v.key]) for v in selectors.QUEUE_VIEWS],
        "filter_query": params.urlencode(),
        "save_query": _without(request.GET, "after"),
        "first_page": not data["after"],
        "sort": data["sort"],
        "now": timezone.now(),
        "priorities": Conversation.Priority.choices,
        **selectors.queue_filter_choices(user=request.user),
    }
    template = "home.html#queue" if request.htmx else "home.html"
    return render(request, template, context)


def _without(query: Any, *names: str) -> str:
    params = query.copy()
    for name in names:
        params.pop(name, None)
    return str(params.urlencode())


# --- Conversation page -------------------------------------------------------------------------


def _conversation_context(request: StaffRequest, conversation: Conversation) -> dict[str, Any]:
    page_messages = selectors.conversation_messages_for_page(conversation=conversation)
    timeline = selectors.conversation_timeline(conversation=conversation, messages=page_messages)
    panel = selectors.customer_panel_data(user=request.user, conversation=conversation)
    message_ids = [m.pk for m in page_messages]
    last_inbound = next(
        (
            m
            for m in reversed(page_messages)
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
    others = [*panel["other_conversations"], *panel["other_elsewhere"]]
    outcomes = extensions.annotate("conversation.outcome", [c.pk for c in others])
    for other in others:
        other.outcome = outcomes.get(other.pk)
        other.outcome_label = OUTCOME_LABELS.get(other.outcome or "", "—")
    move_targets = [c for c in panel["other_conversations"] if c.is_active]
    customer = conversation.customer
    entries = [entry for entry in timeline if entry.message]
    for entry, html in zip(
        entries,
        fragments.render_fragments(
            "tickets/_message.html",
            [
                (
                    fragments.message_parts(
                        entry.message, contact_number=entry.contact_number, customer=customer
                    ),
                    {
                        "message": entry.message,
                        "entry": entry,
                        "customer": customer,
                    },
                )
                for entry in entries
            ],
        ),
        strict=True,
    ):
        entry.html = html
    (past_conversations_html,) = fragments.render_fragments(
        "tickets/_past_conversations.html",
        [
            (
                fragments.past_conversation_parts(
                    panel["other_conversations"], panel["other_elsewhere"]
                ),
                {
                    "other_conversations": panel["other_conversations"],
                    "other_elsewhere": panel["other_elsewhere"],
                },
            )
        ],
    )
    replies = selectors.saved_reply_list()
    saved_replies = [
        (
            reply,
            services.saved_reply_render(
                saved_reply=reply, customer=conversation.customer, agent=request.user
            ),
        )
        for reply in replies
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
        "macros": saved_replies,
        "viewers": selectors.conversation_viewers(conversation=conversation, exclude=request.user),
        "agents": selectors.conversation_assignable_agents(conversation=conversation),
        "teams": selectors.team_list_for_user(user=request.user),
        "move_targets": move_targets,
        # The same options under every message: built once, not once a message.
        "move_options": format_html_join(
            "",
            '<option value="{}">#{} {}</option>',
            ((c.pk, c.pk, Truncator(c.subject).chars(40)) for c in move_targets),
        ),
        "link_form": LinkIdentityForm(),
        "customer_languages": language_choices(),
        "participants": selectors.conversation_participants(conversation=conversation),
        "cc_ticked": set(),
        "attachment_max_bytes": settings.ATTACHMENT_MAX_BYTES,
        "call_form": CallLogForm(initial={"started_at": timezone.localtime()}),
        "tags": selectors.tag_list(),
        "conversation_tags": list(conversation.tags.order_by("name")),
        "priorities": Conversation.Priority.choices,
        "past_conversations_html": past_conversations_html,
        **panel,
    }


@login_required
@require_GET
def conversation_detail(request: StaffRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    services.conversation_presence_touch(conversation=conversation, user=request.user)
    context = _conversation_context(request, conversation)
    context["reply_form"] = ReplyForm(initial={"channel": context["default_channel"]})
    return render(request, "tickets/conversation.html", context)


def _back(pk: int) -> HttpResponse:
    return redirect("workspace:conversation", pk=pk)


def back_to_conversation(pk: int) -> HttpResponse:
    """Redirect to the conversation page (for the other workspace view modules)."""
    return _back(pk)


def refused_on_conversation(request: StaffRequest, pk: int, exc: ApplicationError) -> HttpResponse:
    """The conversation page with the refusal and its status (for the other view modules)."""
    return _refused(request, pk, exc)


def _refused(request: StaffRequest, pk: int, exc: ApplicationError) -> HttpResponse:
    """A refusal on a plain form post: say why on the conversation page, with the error's status."""
    messages.error(request, str(exc))
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    context = _conversation_context(request, conversation)
    context["reply_form"] = ReplyForm(initial={"channel": context["default_channel"]})
    return render(request, "tickets/conversation.html", context, status=exc.status)


def conversation_refused(request: StaffRequest, pk: int, exc: ApplicationError) -> HttpResponse:
    """The conversation page again with the reason of a refusal (for other modules' forms)."""
    return _refused(request, pk, exc)


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
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
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
    if not form.is_valid() or not (conversation_id.isdigit() or conversation_id == ""):
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
        return _refused_for(request, conversation_id, customer.pk, exc)
    except ApplicationError as exc:
        return _refused_for(request, conversation_id, customer.pk, exc)
    messages.success(request, f"Linked {value} to {customer}.")
    return _back_to(conversation_id, customer.pk)


def _back_to(conversation_id: str, customer_id: int) -> HttpResponse:
    """Back to the conversation the form was on, or to the customer page (no conversation)."""
    if conversation_id.isdigit():
        return _back(int(conversation_id))
    return redirect("workspace:customer", pk=customer_id)


def _refused_for(
    request: StaffRequest, conversation_id: str, customer_id: int, exc: ApplicationError
) -> HttpResponse:
    if conversation_id.isdigit():
        return _refused(request, int(conversation_id), exc)
    from tickets.customer_views import customer_refused  # it imports this module

    customer = selectors.customer_get_for_user(user=request.user, pk=customer_id)
    return customer_refused(request, customer, str(exc), status=exc.status)


@login_required
@require_POST
def customer_language(request: StaffRequest, pk: int) -> HttpResponse:
    """The language mail to the customer is written in (the customer panel's select)."""
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    conversation_id = request.POST.get("conversation", "")
    if not conversation_id.isdigit():
        return HttpResponseBadRequest(gettext("Change the language from a conversation."))
    try:
        customer = services.customer_language_set(
            customer=customer, language=request.POST.get("language", ""), actor=request.user
        )
    except ApplicationError as exc:
        return _refused(request, int(conversation_id), exc)
    label = dict(language_choices()).get(customer.language, gettext("not known"))
    messages.success(
        request,
        gettext("Language of %(customer)s: %(language)s.")
        % {"customer": customer, "language": label},
    )
    return _back(int(conversation_id))


@login_required
def customer_merge(request: StaffRequest, pk: int) -> HttpResponse:
    """GET: the confirmation (both customers side by side). POST: merge, then offer an undo."""
    target = selectors.customer_get_for_user(user=request.user, pk=pk)
    conversation_id = request.GET.get("conversation") or request.POST.get("conversation") or ""
    if conversation_id and not conversation_id.isdigit():
        return HttpResponseBadRequest("Open the merge from a conversation or a customer page.")
    other: Customer | None
    if request.method == "POST":
        form = MergeForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest("Choose the customer to merge in.")
        other = selectors.customer_get_for_user(user=request.user, pk=form.cleaned_data["other"])
        try:
            merge = services.customer_merge(target=target, other=other, actor=request.user)
        except ApplicationError as exc:
            return _refused_for(request, conversation_id, target.pk, exc)
        messages.success(
            request, f"Merged {merge.merged_name or f'customer #{other.pk}'} into {target}."
        )
        return _back_to(conversation_id, target.pk)
    ref = request.GET.get("other", "") or request.GET.get("handle", "")
    if not ref:
        return HttpResponseBadRequest("Say who to merge in: ?handle= or ?other=.")
    other_id = selectors.customer_id_by_handle(handle=ref) if ref else None
    other = None
    if other_id is not None:
        # A customer the caller may not open answers exactly like no customer: no oracle.
        with contextlib.suppress(Http404):
            other = selectors.customer_get_for_user(user=request.user, pk=other_id)
    if other is None:
        messages.error(request, f"No customer has the handle {ref!r}." if ref else "Say who.")
        return _back_to(conversation_id, target.pk)
    if other.pk == target.pk:
        messages.info(request, "That handle already belongs to this customer.")
        return _back_to(conversation_id, target.pk)
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
    if conversation_id and not conversation_id.isdigit():
        return HttpResponseBadRequest("Undo a merge from a conversation or a customer page.")
    try:
        services.customer_merge_undo(merge=merge, actor=request.user)
    except ApplicationError as exc:
        return _refused_for(request, conversation_id, merge.target_id, exc)
    messages.success(request, "Merge undone: the other customer is separate again.")
    return _back_to(conversation_id, merge.target_id)


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
