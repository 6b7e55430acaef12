"""Workspace forms: they validate the shape of a request, the services decide the rest."""

from __future__ import annotations

from django import forms
from django.http import QueryDict

from tickets.models import ChannelKind, Conversation, Identity

REPLY_CHANNELS = [
    (ChannelKind.EMAIL, "Email"),
    (ChannelKind.CHAT, "Chat"),
    (ChannelKind.SOCIAL, "Social"),
]


# Ids beyond bigint are no id at all; a bound makes them a form error (SQLite would raise).
PK_MAX = 2**63 - 1


class QueueFilterForm(forms.Form):
    view = forms.CharField(required=False)
    q = forms.CharField(required=False, max_length=200, label="Search")
    channel = forms.ChoiceField(
        required=False, choices=[("", "Any channel"), *ChannelKind.choices], label="Channel"
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *Conversation.Status.choices],
        label="Status",
    )
    team = forms.IntegerField(required=False, min_value=1, label="Team", max_value=PK_MAX)
    assignee = forms.RegexField(
        required=False, regex=r"^(none|\d{1,12})$", label="Assignee", max_length=12
    )
    after = forms.CharField(required=False, max_length=100)
    tag = forms.CharField(required=False, max_length=50, label="Tag")
    priority = forms.ChoiceField(
        required=False,
        choices=[("", "Any priority"), *Conversation.Priority.choices],
        label="Priority",
    )


# What a saved view keeps of the queue's query string.
SAVED_VIEW_FIELDS = ("view", "q", "channel", "status", "team", "assignee", "tag", "priority")


class TriageForm(forms.Form):
    """The conversation page's tags and priority (tags: names, any number of them)."""

    tags = forms.CharField(required=False, max_length=2000)
    priority = forms.ChoiceField(choices=Conversation.Priority.choices)
    version = forms.IntegerField(min_value=1, required=False, max_value=PK_MAX)

    def clean_tags(self) -> list[str]:
        data = self.data
        names = data.getlist("tags") if isinstance(data, QueryDict) else []
        return [name for name in names if name.strip()]


BULK_ACTIONS = [
    ("assign_me", "Assign to me"),
    ("assign", "Assign to…"),
    ("tag", "Add tag"),
    ("priority", "Set priority"),
    ("spam", "Mark as spam"),
    ("solve", "Solve"),
]


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    agent = forms.RegexField(regex=r"^\d{1,12}$", required=False)
    tag = forms.CharField(required=False, max_length=50)
    priority = forms.ChoiceField(
        required=False, choices=[("", "—"), *Conversation.Priority.choices]
    )
    block_sender = forms.BooleanField(required=False)
    confirm = forms.BooleanField(required=False)
    next = forms.CharField(required=False, max_length=2000)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        ids = []
        data_ids = self.data.getlist("ids") if isinstance(self.data, QueryDict) else []
        for raw in data_ids:
            if not raw.isdigit() or len(raw) > 18:
                raise forms.ValidationError("Select conversations from the queue.")
            ids.append(int(raw))
        if not ids:
            raise forms.ValidationError("Select at least one conversation.")
        data["ids"] = list(dict.fromkeys(ids))
        action = data.get("action")
        if action == "assign" and not data.get("agent"):
            raise forms.ValidationError("Choose the agent to assign to.")
        if action == "tag" and not (data.get("tag") or "").strip():
            raise forms.ValidationError("Choose the tag to add.")
        if action == "priority" and not data.get("priority"):
            raise forms.ValidationError("Choose the priority.")
        return data


class MacroForm(forms.Form):
    macro = forms.IntegerField(min_value=1, max_value=PK_MAX)
    version = forms.IntegerField(min_value=1, required=False, max_value=PK_MAX)
    seen_up_to = forms.IntegerField(min_value=0, required=False, max_value=PK_MAX)


class SpamForm(forms.Form):
    block_sender = forms.BooleanField(required=False)
    version = forms.IntegerField(min_value=1, required=False, max_value=PK_MAX)


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=60)
    query = forms.CharField(required=False, max_length=500)


class TagForm(forms.Form):
    name = forms.CharField(max_length=50)


class ReplyForm(forms.Form):
    body = forms.CharField(max_length=50_000, label="Reply", strip=True)
    channel = forms.ChoiceField(choices=REPLY_CHANNELS, required=False, label="Reply on")
    internal = forms.BooleanField(required=False)
    seen_up_to = forms.IntegerField(min_value=0, required=False, max_value=PK_MAX)


class AssignForm(forms.Form):
    agent = forms.RegexField(regex=r"^(none|\d{1,12})$", required=False, label="Agent")
    team = forms.IntegerField(required=False, min_value=1, label="Team", max_value=PK_MAX)


class MoveForm(forms.Form):
    to_conversation = forms.IntegerField(
        min_value=1, label="Move to conversation", max_value=PK_MAX
    )


class LinkIdentityForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[
            (Identity.Kind.EMAIL, "Email"),
            (Identity.Kind.PHONE, "Phone"),
            (Identity.Kind.SOCIAL, "Social (network:@handle)"),
        ],
        label="Kind",
    )
    value = forms.CharField(max_length=320, label="Handle")
    conversation = forms.IntegerField(min_value=1, required=False, max_value=PK_MAX)


class MergeForm(forms.Form):
    other = forms.IntegerField(min_value=1, label="Customer to merge in", max_value=PK_MAX)
    conversation = forms.IntegerField(min_value=1, required=False, max_value=PK_MAX)


class ChatStartForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, label="Your name (optional)")
    email = forms.EmailField(
        required=False, max_length=320, label="Your email (optional, for replies by email)"
    )


class ChatMessageForm(forms.Form):
    body = forms.CharField(max_length=5000, label="Message", strip=True)
