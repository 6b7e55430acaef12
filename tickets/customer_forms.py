"""Forms of the customer pages, the screen pop, starting conversations and logging calls.

They check the shape of a request; the services decide the rest (a taken handle, a team that is
not the agent's...)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone

from tickets.forms import PK_MAX
from tickets.models import Call, Contact

CALL_MAX_SECONDS = 24 * 3600


class CustomerSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search customers")
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000)


class LookupForm(forms.Form):
    """``/lookup/?phone=`` or ``?email=``: what a phone system (or an agent) opens."""

    phone = forms.CharField(required=False, max_length=64)
    email = forms.CharField(required=False, max_length=320)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("phone") and not data.get("email"):
            raise forms.ValidationError("Give ?phone= or ?email=.")
        return data


class CustomerCreateForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, label="Name")
    email = forms.CharField(max_length=320, required=False, label="Email")
    phone = forms.CharField(max_length=64, required=False, label="Phone")
    organisation = forms.CharField(max_length=200, required=False, label="Organisation")
    notes = forms.CharField(required=False, max_length=20_000, label="Notes", widget=forms.Textarea)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not any(data.get(key) for key in ("name", "email", "phone")):
            raise forms.ValidationError("Give at least a name, an email or a phone number.")
        return data


class CustomerEditForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, label="Name")
    language = forms.CharField(max_length=20, required=False, label="Language")
    organisation = forms.CharField(
        max_length=200, required=False, label="Organisation (empty: none)"
    )
    notes = forms.CharField(required=False, max_length=20_000, label="Notes", widget=forms.Textarea)


class ConversationStartForm(forms.Form):
    channel = forms.IntegerField(min_value=1, max_value=PK_MAX, label="Write on")
    customer = forms.IntegerField(min_value=1, max_value=PK_MAX, required=False)
    to = forms.CharField(
        max_length=320,
        required=False,
        label="To",
        help_text="An email address, a network:@handle or a chat visitor id; empty: the "
        "customer's own.",
    )
    subject = forms.CharField(max_length=200, required=False, label="Subject")
    body = forms.CharField(max_length=50_000, label="Message", strip=True)
    team = forms.IntegerField(min_value=1, max_value=PK_MAX, required=False, label="Team")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("customer") and not data.get("to"):
            raise forms.ValidationError("Say who to write to: an address or handle in To.")
        return data


class CallLogForm(forms.Form):
    direction = forms.ChoiceField(
        choices=Call.Direction.choices, widget=forms.RadioSelect, initial="inbound"
    )
    started_at = forms.DateTimeField(
        label="Started",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )
    wait_seconds = forms.IntegerField(min_value=0, max_value=CALL_MAX_SECONDS, initial=0)
    talk_seconds = forms.IntegerField(min_value=0, max_value=CALL_MAX_SECONDS, initial=0)
    hold_seconds = forms.IntegerField(min_value=0, max_value=CALL_MAX_SECONDS, initial=0)
    ended_by = forms.ChoiceField(choices=Contact.EndedBy.choices, initial="customer")
    notes = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea)
    # Customer page: which conversation ("" starts a new one).
    conversation = forms.IntegerField(min_value=1, max_value=PK_MAX, required=False)
    team = forms.IntegerField(min_value=1, max_value=PK_MAX, required=False)

    def clean_started_at(self) -> Any:
        return self.cleaned_data.get("started_at") or timezone.now()
