"""Triage pages: tags and priority, spam, macros, bulk actions on queue rows, saved views, tags.

Same rules as ``tickets.views``: a form validates the request, one service per change, refusals
shown with the status they carry, nothing half-stored.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from tickets import selectors, services
from tickets.forms import (
    SAVED_VIEW_FIELDS,
    BulkForm,
    MacroForm,
    QueueFilterForm,
    SavedViewForm,
    SpamForm,
    TagForm,
    TriageForm,
)
from tickets.views import back_to_conversation as _back
from tickets.views import refused_on_conversation as _refused


def _queue_url(request: StaffRequest, raw: str) -> str:
    """Back to the queue the agent came from (only a local path), else the queue."""
    if raw and raw.startswith("/") and url_has_allowed_host_and_scheme(raw, allowed_hosts=None):
        return raw
    return reverse("home")


# --- One conversation ------------------------------------------------------------------------------


@login_required
@require_POST
def conversation_triage(request: StaffRequest, pk: int) -> HttpResponse:
    """Tags (the whole set, by name) and priority from the conversation page."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = TriageForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose a priority: " + form.errors.as_text())
    try:
        services.conversation_triage(
            conversation=conversation,
            actor=request.user,
            tags=services.tags_by_names(form.cleaned_data["tags"]),
            priority=form.cleaned_data["priority"],
            expected_version=form.cleaned_data["version"],
        )
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    messages.success(request, "Tags and priority saved.")
    return _back(pk)


@login_required
@require_POST
def conversation_spam(request: StaffRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = SpamForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text())
    try:
        services.conversation_mark_spam(
            conversation=conversation,
            actor=request.user,
            block_sender=form.cleaned_data["block_sender"],
            expected_version=form.cleaned_data["version"],
        )
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    messages.success(
        request,
        "Marked as spam: hidden from the queue, never surveyed, never counted"
        + (", and the sender is blocked." if form.cleaned_data["block_sender"] else "."),
    )
    return redirect("home")


@login_required
@require_POST
def conversation_not_spam(request: StaffRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = SpamForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text())
    try:
        services.conversation_unmark_spam(
            conversation=conversation,
            actor=request.user,
            expected_version=form.cleaned_data["version"],
        )
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    messages.success(request, "Not spam: back in the queue and the figures.")
    return _back(pk)


@login_required
@require_POST
def conversation_macro(request: StaffRequest, pk: int) -> HttpResponse:
    """Run a macro in one click: its reply, tags, priority, assignee and status."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = MacroForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("Choose a macro.")
    macro = selectors.saved_reply_get(pk=form.cleaned_data["macro"])
    try:
        services.saved_reply_apply(
            conversation=conversation,
            saved_reply=macro,
            actor=request.user,
            expected_version=form.cleaned_data["version"],
            seen_up_to=form.cleaned_data["seen_up_to"],
        )
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    messages.success(request, f"Macro “{macro.title}” applied.")
    return _back(pk)


# --- Bulk actions on queue rows --------------------------------------------------------------------


@login_required
@require_POST
def conversations_bulk(request: StaffRequest) -> HttpResponse:
    """Assign, tag, set priority, mark spam or solve the selected rows.

    Solving asks for confirmation first (a page listing what will be solved); each solve is the
    ordinary solve, with its survey. Rows the agent may not open are not there (no oracle).
    """
    form = BulkForm(request.POST)
    back = _queue_url(request, request.POST.get("next", ""))
    if not form.is_valid():
        messages.error(
            request, " ".join(str(e) for e in form.non_field_errors()) or form.errors.as_text()
        )
        return redirect(back)
    data = form.cleaned_data
    conversations = selectors.conversations_for_bulk(user=request.user, ids=data["ids"])
    if not conversations:
        messages.error(request, "None of the selected conversations is yours to change.")
        return redirect(back)
    action = data["action"]
    if action == "solve" and not data["confirm"]:
        return render(
            request,
            "tickets/bulk_confirm.html",
            {"conversations": conversations, "next": back, "action": action},
        )
    user = request.user
    try:
        if action == "assign_me":
            result = services.conversations_bulk(
                conversations=conversations,
                change=lambda c: services.conversation_assign(
                    conversation=c, actor=user, agent=user
                ),
            )
            done = "assigned to you"
        elif action == "assign":
            agent = selectors.staff_get_by_ref(ref=data["agent"])
            if agent is None or not agent.is_active:
                raise ApplicationError("No such agent.")
            result = services.conversations_bulk(
                conversations=conversations,
                change=lambda c: services.conversation_assign(
                    conversation=c, actor=user, agent=agent
                ),
            )
            done = f"assigned to {agent}"
        elif action == "tag":
            (tag,) = services.tags_by_names([data["tag"]])
            result = services.conversations_bulk(
                conversations=conversations,
                change=lambda c: services.conversation_triage(
                    conversation=c, actor=user, tags=[*c.tags.all(), tag]
                ),
            )
            done = f"tagged {tag.name}"
        elif action == "priority":
            result = services.conversations_bulk(
                conversations=conversations,
                change=lambda c: services.conversation_triage(
                    conversation=c, actor=user, priority=data["priority"]
                ),
            )
            done = f"set to {data['priority']} priority"
        elif action == "spam":
            result = services.conversations_bulk(
                conversations=conversations,
                change=lambda c: services.conversation_mark_spam(
                    conversation=c, actor=user, block_sender=data["block_sender"]
                ),
            )
            done = "marked as spam"
        else:
            result = services.conversations_bulk(
                conversations=conversations,
                change=lambda c: services.conversation_solve(conversation=c, actor=user),
            )
            done = "solved (each customer will be asked whether it is)"
    except ApplicationError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    if result.done:
        messages.success(
            request,
            f"{len(result.done)} conversation{'s' if len(result.done) != 1 else ''} {done}.",
        )
    for pk, reason in result.skipped:
        messages.warning(request, f"#{pk} skipped: {reason}")
    return redirect(back)


# --- Saved views -----------------------------------------------------------------------------------


@login_required
@require_POST
def saved_view_create(request: StaffRequest) -> HttpResponse:
    form = SavedViewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the view a name.")
        return redirect("home")
    filters = QueueFilterForm(QueryDict(form.cleaned_data["query"]))
    if not filters.is_valid():
        return HttpResponseBadRequest("Those filters are not valid: " + filters.errors.as_text())
    kept = {
        name: str(filters.cleaned_data[name])
        for name in SAVED_VIEW_FIELDS
        if filters.cleaned_data.get(name) not in (None, "")
    }
    query = urlencode(kept)
    try:
        services.saved_view_save(user=request.user, name=form.cleaned_data["name"], query=query)
    except ApplicationError as exc:
        messages.error(request, str(exc))
        return redirect("home")
    messages.success(request, f"View “{form.cleaned_data['name']}” saved.")
    return redirect(f"{reverse('home')}?{query}")


@login_required
@require_POST
def saved_view_delete(request: StaffRequest) -> HttpResponse:
    """Delete one of the caller's saved views (another agent's is a 404: no oracle)."""
    raw = request.POST.get("view", "")
    if not raw.isdigit() or len(raw) > 18:
        return HttpResponseBadRequest("Choose the view to delete.")
    try:
        services.saved_view_delete(user=request.user, view_id=int(raw))
    except ApplicationError as exc:
        raise Http404(str(exc)) from exc
    messages.success(request, "Saved view deleted.")
    return redirect("home")


# --- Tags (managers) -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def tags_page(request: StaffRequest) -> HttpResponse:
    """Managers create, rename, archive and restore topics; agents may look."""
    if request.method == "POST":
        if not request.user.is_manager:
            raise PermissionDenied("Only managers create tags.")
        form = TagForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give the tag a name (50 characters at most).")
            return redirect("workspace:tags")
        try:
            tag = services.tag_create(name=form.cleaned_data["name"], actor=request.user)
        except ApplicationError as exc:
            messages.error(request, str(exc))
            return render(
                request,
                "tickets/tags.html",
                {"tags": selectors.tag_list_with_counts()},
                status=exc.status,
            )
        messages.success(request, f"Tag “{tag.name}” created.")
        return redirect("workspace:tags")
    return render(request, "tickets/tags.html", {"tags": selectors.tag_list_with_counts()})


@login_required
@require_POST
def tag_update(request: StaffRequest, pk: int) -> HttpResponse:
    if not request.user.is_manager:
        raise PermissionDenied("Only managers rename and archive tags.")
    tag = selectors.tag_get(pk=pk)
    action = request.POST.get("action", "rename")
    try:
        if action == "archive":
            services.tag_archive(tag=tag, actor=request.user)
            messages.success(request, f"Tag “{tag.name}” archived.")
        elif action == "restore":
            services.tag_archive(tag=tag, actor=request.user, archived=False)
            messages.success(request, f"Tag “{tag.name}” restored.")
        else:
            form = TagForm(request.POST)
            if not form.is_valid():
                raise ApplicationError("Give the tag a name (50 characters at most).")
            services.tag_rename(tag=tag, name=form.cleaned_data["name"], actor=request.user)
            messages.success(request, f"Tag renamed to “{form.cleaned_data['name']}”.")
    except ApplicationError as exc:
        messages.error(request, str(exc))
        return render(
            request,
            "tickets/tags.html",
            {"tags": selectors.tag_list_with_counts()},
            status=exc.status,
        )
    return redirect("workspace:tags")
