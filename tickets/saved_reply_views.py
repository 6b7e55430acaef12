"""Saved replies and macros (managers and admins): create, edit, delete.

Every change goes through ``tickets.services.saved_reply_save`` / ``saved_reply_delete``
(validated, audited); these views only check the role and the shape of the input.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from tickets.models import Conversation, SavedReply, Tag
from tickets.services import SAVED_REPLY_VARIABLES, saved_reply_delete, saved_reply_save


class SavedReplyForm(forms.Form):
    title = forms.CharField(max_length=100, label="Title")
    body = forms.CharField(
        required=False,
        max_length=20000,
        label="Reply",
        widget=forms.Textarea(attrs={"rows": 7}),
        help_text="Variables: " + ", ".join(SAVED_REPLY_VARIABLES) + ". Leave empty for a "
        "macro that only sets things.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Agents can use it")
    add_tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Tags it adds",
    )
    set_priority = forms.ChoiceField(
        choices=[("", "Leave the priority"), *Conversation.Priority.choices],
        required=False,
        label="Priority",
    )
    set_status = forms.ChoiceField(
        choices=SavedReply.Status.choices, required=False, label="Status"
    )
    set_assignee = forms.ChoiceField(
        choices=SavedReply.Assignee.choices, required=False, label="Assignee"
    )

    def __init__(self, *args: Any, saved_reply: SavedReply | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Archived tags can no longer be added, except those the macro already adds.
        kept = Q(pk__in=saved_reply.add_tags.values("pk")) if saved_reply else Q(pk__in=[])
        field = self.fields["add_tags"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = Tag.objects.filter(Q(archived_at__isnull=True) | kept).order_by("name")


def _manager_only(request: StaffRequest) -> None:
    if not request.user.is_manager:
        raise PermissionDenied("Only managers and admins change saved replies.")


def _initial(reply: SavedReply) -> dict[str, Any]:
    return {
        "title": reply.title,
        "body": reply.body,
        "is_active": reply.is_active,
        "add_tags": list(reply.add_tags.all()),
        "set_priority": reply.set_priority,
        "set_status": reply.set_status,
        "set_assignee": reply.set_assignee,
    }


def _save(request: StaffRequest, form: SavedReplyForm, reply: SavedReply | None) -> SavedReply:
    data = form.cleaned_data
    return saved_reply_save(
        saved_reply=reply,
        title=data["title"],
        body=data["body"],
        is_active=data["is_active"],
        add_tags=list(data["add_tags"]),
        set_priority=data["set_priority"],
        set_status=data["set_status"],
        set_assignee=data["set_assignee"],
        actor=request.user,
    )


def _list_page(request: StaffRequest, form: SavedReplyForm, *, status: int = 200) -> HttpResponse:
    replies = SavedReply.objects.prefetch_related(
        Prefetch("add_tags", queryset=Tag.objects.order_by("name"))
    ).order_by("title")
    return render(
        request,
        "tickets/saved_replies.html",
        {"replies": replies, "form": form},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def saved_reply_list(request: StaffRequest) -> HttpResponse:
    _manager_only(request)
    if request.method == "GET":
        return _list_page(request, SavedReplyForm())
    form = SavedReplyForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        reply = _save(request, form, None)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _list_page(request, form, status=400)
    messages.success(request, f"Saved reply “{reply.title}” created.")
    return redirect("workspace:saved-replies")


@login_required
@require_http_methods(["GET", "POST"])
def saved_reply_edit(request: StaffRequest, pk: int) -> HttpResponse:
    _manager_only(request)
    reply = get_object_or_404(SavedReply, pk=pk)
    if request.method == "GET":
        form = SavedReplyForm(initial=_initial(reply), saved_reply=reply)
        return render(request, "tickets/saved_reply_edit.html", {"reply": reply, "form": form})
    form = SavedReplyForm(request.POST, saved_reply=reply)
    if form.is_valid():
        try:
            reply = _save(request, form, reply)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Saved reply “{reply.title}” saved.")
            return redirect("workspace:saved-replies")
    return render(
        request, "tickets/saved_reply_edit.html", {"reply": reply, "form": form}, status=400
    )


@login_required
@require_POST
def saved_reply_delete_view(request: StaffRequest, pk: int) -> HttpResponse:
    _manager_only(request)
    reply = get_object_or_404(SavedReply, pk=pk)
    saved_reply_delete(saved_reply=reply, actor=request.user)
    messages.success(request, f"Saved reply “{reply.title}” deleted.")
    return redirect("workspace:saved-replies")
