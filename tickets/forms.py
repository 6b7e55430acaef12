"""Workspace forms: they validate the shape of a request, the services decide the rest."""

from __future__ import annotations

import re
from typing import Any

from django import forms

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


def _addresses(value: str) -> list[str]:
    """Addresses typed into one field, separated by commas, semicolons or spaces."""
    return [part for part in re.split(r"[\s,;]+", value or "") if part]


class ReplyForm(forms.Form):
    body = forms.CharField(max_length=50_000, label="Reply", strip=True)
    channel = forms.ChoiceField(choices=REPLY_CHANNELS, required=False, label="Reply on")
    internal = forms.BooleanField(required=False)
    seen_up_to = forms.IntegerField(min_value=0, required=False, max_value=PK_MAX)
    # Reply-all: the participants ticked in the composer (name="cc", repeated).
    cc = forms.MultipleChoiceField(required=False, choices=[])
    cc_more = forms.CharField(required=False, max_length=5000, label="Cc")
    bcc = forms.CharField(required=False, max_length=5000, label="Bcc")

    def __init__(self, *args: Any, participants: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ticked boxes are checked by the service like typed addresses; any address is allowed.
        self.fields["cc"] = forms.MultipleChoiceField(
            required=False, choices=[(p, p) for p in participants or []]
        )

    def copies(self) -> tuple[list[str], list[str]]:
        """(cc, bcc) as typed and ticked; the service normalises and refuses bad addresses."""
        data = self.cleaned_data
        cc = [*data.get("cc", []), *_addresses(data.get("cc_more", ""))]
        return cc, _addresses(data.get("bcc", ""))


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


class ChannelSendingForm(forms.Form):
    from_name = forms.CharField(required=False, max_length=100, label="Sender name")
    signature = forms.CharField(
        required=False, max_length=2000, label="Mailbox signature", widget=forms.Textarea
    )
    acknowledge = forms.BooleanField(required=False, label="Acknowledge new conversations")
