"""The forms of the quality pages: they parse and coerce what a browser posts.

What is *allowed* (a reason is required, a comment is capped, a rating is 1 to 5) is decided by
the services, so the pages and code calling the services directly follow one rule; the forms
turn text into the types the services take and never reject what a service would explain
better. A number that is not one becomes ``None`` and the view or service says what is missing.
"""

from __future__ import annotations

from typing import Any

from django import forms

PK_MAX = 2**63 - 1  # an id beyond bigint is no id at all


class OptionalIntField(forms.Field):
    """An integer, or None for anything that is not one (empty, text, beyond bigint)."""

    def to_python(self, value: Any) -> int | None:
        try:
            number = int(value)
        except (TypeError, ValueError):
            return None
        return number if -PK_MAX <= number <= PK_MAX else None


class IntListField(forms.Field):
    """Every integer among a repeated field's values (``reviewers=1&reviewers=2``)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        numbers = (OptionalIntField().to_python(item) for item in (value or []))
        return [number for number in numbers if number]


class TextField(forms.CharField):
    """Text as posted (not stripped: the services trim and cap it), "" when absent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=False, **kwargs)


class OnUnlessOffField(forms.Field):
    """A checkbox that counts as ticked when the field is absent (forms that list it as hidden)."""

    widget = forms.TextInput

    def to_python(self, value: Any) -> bool:
        return value is None or value == "on"


class ReviewResponseForm(forms.Form):
    action = TextField()
    comment = TextField()


class ReviewReplaceForm(forms.Form):
    reason = TextField()


class CalibrationForm(forms.Form):
    conversation = OptionalIntField(required=False)
    reviewers = IntListField(required=False)


class IdeaStatusForm(forms.Form):
    status = TextField()


class IdeaNotifyForm(forms.Form):
    body = TextField()


class IdeaLogForm(forms.Form):
    idea = OptionalIntField(required=False)
    title = TextField()
    quote = TextField()


class CancellationReasonForm(forms.Form):
    pk = OptionalIntField(required=False)
    name = TextField()
    is_active = OnUnlessOffField(required=False)
    position = OptionalIntField(required=False)


class CancellationForm(forms.Form):
    reason = OptionalIntField(required=False)
    outcome = TextField()
    note = TextField()

    def clean_outcome(self) -> str:
        return self.cleaned_data["outcome"] if "outcome" in self.data else "pending"


class CheckInActForm(forms.Form):
    action = TextField()
    body = TextField()


class CheckInRuleForm(forms.Form):
    days_after = OptionalIntField(required=False)
    is_active = forms.BooleanField(required=False)


class PulseForm(forms.Form):
    week_rating = OptionalIntField(required=False)
    has_what_needed = TextField()
    comment = TextField()


def parsed(form_class: type[forms.Form], data: Any) -> dict[str, Any]:
    """The form's cleaned data. Every field is lenient, so a bound form is always valid."""
    form = form_class(data)
    form.is_valid()
    return form.cleaned_data


class ReviewSubmitForm(forms.Form):
    """A review's answers: ``criterion_<id>`` is a number, ``na`` (not applicable) or absent."""

    comment = TextField()

    def __init__(self, data: Any, *, criteria: Any) -> None:
        super().__init__(data)
        self.criteria = list(criteria)
        for criterion in self.criteria:
            self.fields[f"criterion_{criterion.pk}"] = TextField()

    def values(self) -> dict[int, int | None]:
        """{criterion id: value}, None for N/A; an unanswered or unreadable criterion is left out."""
        self.is_valid()
        values: dict[int, int | None] = {}
        for criterion in self.criteria:
            raw = self.cleaned_data.get(f"criterion_{criterion.pk}", "")
            number = OptionalIntField().to_python(raw)
            if raw == "na":
                values[criterion.pk] = None
            elif number is not None:
                values[criterion.pk] = number
        return values


RUBRIC_MAX_ROWS = 50  # the row count comes from the form and is not trusted beyond this


class RubricForm(forms.Form):
    """A rubric to publish: ``rows`` criteria, each as ``name_<i>``, ``description_<i>``,
    ``weight_<i>``, ``scale_<i>``, ``allow_na_<i>`` and ``critical_<i>``."""

    rows = OptionalIntField(required=False)

    def criteria(self) -> list[dict[str, Any]]:
        self.is_valid()
        count = min(max(self.cleaned_data.get("rows") or 0, 0), RUBRIC_MAX_ROWS)
        data = self.data
        return [
            {
                "name": data.get(f"name_{index}", ""),
                "description": data.get(f"description_{index}", ""),
                "weight": data.get(f"weight_{index}", "1"),
                "scale": data.get(f"scale_{index}", "yes_no"),
                "allow_na": data.get(f"allow_na_{index}") == "on",
                "critical": data.get(f"critical_{index}") == "on",
            }
            for index in range(count)
        ]
