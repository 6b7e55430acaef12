"""Workspace forms: they validate the shape of a request, the services decide the rest."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from supportdesk.models import Team
from tickets.models import ChannelKind, Conversation, Identity, Mailbox
from tickets.services.mailboxes import MAILBOX_FIELDS

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
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "Latest activity"), ("due", "Due soonest (promised reply)")],
        label="Sort",
    )


# What a saved view keeps of the queue's query string.
SAVED_VIEW_FIELDS = (
    "view", "q", "channel", "status", "team", "assignee", "tag", "priority", "sort",
)  # fmt: skip


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
    name = forms.CharField(max_length=200, required=False, label=_("Your name (optional)"))
    email = forms.EmailField(
        required=False, max_length=320, label=_("Your email (optional, for replies by email)")
    )


class ChatMessageForm(forms.Form):
    body = forms.CharField(max_length=5000, label=_("Message"), strip=True)


class ChannelSendingForm(forms.Form):
    from_name = forms.CharField(required=False, max_length=100, label="Sender name")
    signature = forms.CharField(
        required=False, max_length=2000, label="Mailbox signature", widget=forms.Textarea
    )
    acknowledge = forms.BooleanField(required=False, label="Acknowledge new conversations")


class MailboxForm(forms.Form):
    """Connect or edit a mailbox. Credentials are write-only: never rendered back, blank keeps."""

    imap_host = forms.CharField(
        max_length=255,
        required=False,
        label="IMAP server",
        help_text="Blank with Google or Microsoft OAuth2: their server is filled in.",
    )
    imap_port = forms.IntegerField(min_value=1, max_value=65535, initial=993, label="Port")
    imap_security = forms.ChoiceField(
        choices=Mailbox.Security.choices, initial="tls", label="Encryption"
    )
    username = forms.CharField(max_length=320, label="User name", help_text="Usually the address.")
    auth = forms.ChoiceField(choices=Mailbox.Auth.choices, initial="password", label="Sign in with")
    password = forms.CharField(
        required=False,
        max_length=1000,
        strip=False,
        label="Password or app password",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    oauth_provider = forms.ChoiceField(
        required=False,
        choices=[("", "—"), *Mailbox.OAuthProvider.choices],
        label="OAuth2 provider",
    )
    oauth_client_id = forms.CharField(required=False, max_length=255, label="Client id")
    oauth_client_secret = forms.CharField(
        required=False,
        max_length=1000,
        strip=False,
        label="Client secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    oauth_authorize_url = forms.URLField(
        assume_scheme="https",
        required=False,
        max_length=500,
        label="Authorize URL (custom provider)",
    )
    oauth_token_url = forms.URLField(
        assume_scheme="https", required=False, max_length=500, label="Token URL (custom provider)"
    )
    oauth_scope = forms.CharField(required=False, max_length=500, label="Scope (custom provider)")
    folder = forms.CharField(max_length=255, initial="INBOX", label="Folder to read")
    after_import = forms.ChoiceField(
        choices=Mailbox.AfterImport.choices, initial="leave", label="After import"
    )
    move_to_folder = forms.CharField(required=False, max_length=255, label="Move to folder")
    smtp_host = forms.CharField(
        required=False,
        max_length=255,
        label="SMTP server",
        help_text="Blank: replies go out through the desk's EMAIL_URL.",
    )
    smtp_port = forms.IntegerField(min_value=1, max_value=65535, initial=587, label="SMTP port")
    smtp_security = forms.ChoiceField(
        choices=Mailbox.Security.choices, initial="starttls", label="SMTP encryption"
    )
    smtp_username = forms.CharField(
        required=False, max_length=320, label="SMTP user name", help_text="Blank: the IMAP user."
    )
    smtp_password = forms.CharField(
        required=False,
        max_length=1000,
        strip=False,
        label="SMTP password",
        help_text="Blank: the IMAP password.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    is_active = forms.BooleanField(
        required=False, initial=True, label="Fetch mail from this mailbox"
    )

    CREDENTIAL_FIELDS = ("password", "oauth_client_secret", "smtp_password")

    def values(self) -> dict[str, object]:
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in self.CREDENTIAL_FIELDS and name in MAILBOX_FIELDS
        }

    def credentials(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name) or "" for name in self.CREDENTIAL_FIELDS}


class MailboxNewForm(MailboxForm):
    channel_name = forms.CharField(
        max_length=100,
        label="Channel name",
        help_text="An email channel; created if it does not exist yet.",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"),
        required=False,
        label="Team",
        help_text="New conversations from this mailbox go to this team.",
    )
    address = forms.EmailField(label="Support address", help_text="The address customers write to.")
    field_order = ["channel_name", "team", "address"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["is_active"]  # a new mailbox fetches at once
