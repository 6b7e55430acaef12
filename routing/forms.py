"""Forms of the hours, routing and rules pages (HTTP parsing only)."""

from __future__ import annotations

from typing import Any

from django import forms

from routing.business_time import WEEKDAYS, format_hhmm
from routing.models import AvailabilityStatus, RoutingMode, RuleTrigger
from supportdesk.models import Team, User
from tickets.models import Channel, ChannelKind, ConversationPriority, Identity, Organisation, Tag

DAY_LABELS = dict(zip(WEEKDAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                 "Saturday", "Sunday"), strict=True))  # fmt: skip


def week_to_text(week: dict[str, list[list[str]]]) -> dict[str, str]:
    return {day: ", ".join(f"{a}-{b}" for a, b in week.get(day, [])) for day in WEEKDAYS}


class HoursForm(forms.Form):
    """Weekly hours as text per day: "09:00-12:30, 13:30-17:00"; empty is closed."""

    time_zone = forms.CharField(max_length=64, initial="UTC")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for day in WEEKDAYS:
            self.fields[day] = forms.CharField(
                label=DAY_LABELS[day], required=False, max_length=200
            )

    def week(self) -> dict[str, list[list[str]]]:
        week: dict[str, list[list[str]]] = {}
        for day in WEEKDAYS:
            text = self.cleaned_data.get(day) or ""
            week[day] = [
                [part.strip() for part in chunk.split("-", 1)]
                if "-" in chunk
                else [chunk.strip(), ""]
                for chunk in text.split(",")
                if chunk.strip()
            ]
        return week


class ExceptionForm(forms.Form):
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    name = forms.CharField(max_length=100, required=False)
    opens = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    closes = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))


class PromiseForm(forms.Form):
    # Written channels: a call is answered live.
    channel_kind = forms.ChoiceField(
        choices=[c for c in ChannelKind.choices if c[0] != ChannelKind.PHONE]
    )
    priority = forms.ChoiceField(
        choices=[("", "Any priority"), *ConversationPriority.choices], required=False
    )
    hours = forms.DecimalField(
        min_value=0, max_value=1440, decimal_places=2, required=False,
        help_text="Business hours; empty removes the promise.",
    )  # fmt: skip


class TeamRoutingForm(forms.Form):
    mode = forms.ChoiceField(choices=RoutingMode.choices)
    cap = forms.IntegerField(min_value=0, max_value=1000, initial=0)
    return_when_away = forms.BooleanField(required=False)


class AvailabilityForm(forms.Form):
    status = forms.ChoiceField(choices=AvailabilityStatus.choices)
    follows_hours = forms.BooleanField(required=False)
    user = forms.IntegerField(required=False)


def _multi(**kwargs: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, **kwargs)


class RuleForm(forms.Form):
    name = forms.CharField(max_length=100)
    trigger = forms.ChoiceField(choices=RuleTrigger.choices, initial=RuleTrigger.INGESTED)
    no_reply_hours = forms.IntegerField(
        min_value=1, max_value=1000, required=False, label="No reply for (business hours)"
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    stop_after = forms.BooleanField(required=False, label="Stop after this rule when it applies")
    # Conditions
    channel_kinds = _multi(choices=ChannelKind.choices, label="Channel")
    mailbox_ids = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.order_by("name"), required=False, label="Mailbox or channel"
    )
    customers = forms.CharField(
        required=False, max_length=2000, label="Customers",
        help_text="Email addresses or customer numbers, comma-separated.",
    )  # fmt: skip
    organisation_ids = forms.ModelMultipleChoiceField(
        queryset=Organisation.objects.order_by("name"), required=False, label="Organisation"
    )
    tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.order_by("name"), required=False, to_field_name="name",
        label="Has any of the tags",
    )  # fmt: skip
    priorities = _multi(choices=ConversationPriority.choices, label="Priority")
    words = forms.CharField(
        required=False, max_length=1000, label="Words in the subject or message",
        help_text="Any of these, comma-separated.",
    )  # fmt: skip
    time_from = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}), label="Arrives from"
    )
    time_to = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}), label="until"
    )
    # Actions
    team_id = forms.ModelChoiceField(
        queryset=Team.objects.all(), required=False, label="Move to team"
    )
    add_tags = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.filter(archived_at__isnull=True).order_by("name"),
        required=False, to_field_name="name", label="Add tags",
    )  # fmt: skip
    priority = forms.ChoiceField(
        choices=[("", "Leave as is"), *ConversationPriority.choices], required=False,
        label="Set priority",
    )  # fmt: skip
    assign_id = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("full_name", "email"),
        required=False, label="Assign to",
    )  # fmt: skip
    note = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}),
        label="Add an internal note",
    )  # fmt: skip

    def clean_customers(self) -> list[int]:
        ids: list[int] = []
        for chunk in (self.cleaned_data.get("customers") or "").split(","):
            value = chunk.strip().lstrip("#")
            if not value:
                continue
            if value.isdigit():
                ids.append(int(value))
                continue
            found = Identity.objects.filter(
                kind=Identity.Kind.EMAIL, value=value.lower()
            ).values_list("customer_id", flat=True)
            if not found:
                raise forms.ValidationError(f"No customer with the address {value}.")
            ids.extend(found)
        return ids

    def data_for_service(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "name": d["name"],
            "trigger": d["trigger"],
            "no_reply_hours": d.get("no_reply_hours"),
            "is_active": d.get("is_active", False),
            "stop_after": d.get("stop_after", False),
            "conditions": {
                "channel_kinds": d.get("channel_kinds") or [],
                "mailbox_ids": [c.pk for c in d.get("mailbox_ids") or []],
                "customer_ids": d.get("customers") or [],
                "organisation_ids": [o.pk for o in d.get("organisation_ids") or []],
                "tags": [t.name for t in d.get("tags") or []],
                "priorities": d.get("priorities") or [],
                "words": d.get("words") or "",
                "time_from": _hhmm(d.get("time_from")),
                "time_to": _hhmm(d.get("time_to")),
            },
            "actions": {
                "team_id": d["team_id"].pk if d.get("team_id") else None,
                "add_tags": [t.name for t in d.get("add_tags") or []],
                "priority": d.get("priority") or "",
                "assign_id": d["assign_id"].pk if d.get("assign_id") else None,
                "note": d.get("note") or "",
            },
        }


def _hhmm(value: Any) -> str:
    return format_hhmm(value.hour * 60 + value.minute) if value else ""


def rule_initial(rule: Any) -> dict[str, Any]:
    c, a = rule.conditions, rule.actions
    return {
        "name": rule.name,
        "trigger": rule.trigger,
        "no_reply_hours": rule.no_reply_hours,
        "is_active": rule.is_active,
        "stop_after": rule.stop_after,
        "channel_kinds": c.get("channel_kinds", []),
        "mailbox_ids": c.get("mailbox_ids", []),
        "customers": ", ".join(str(i) for i in c.get("customer_ids", [])),
        "organisation_ids": c.get("organisation_ids", []),
        "tags": c.get("tags", []),
        "priorities": c.get("priorities", []),
        "words": ", ".join(c.get("words", [])),
        "time_from": c.get("time_from"),
        "time_to": c.get("time_to"),
        "team_id": a.get("team_id"),
        "add_tags": a.get("add_tags", []),
        "priority": a.get("priority", ""),
        "assign_id": a.get("assign_id"),
        "note": a.get("note", ""),
    }
