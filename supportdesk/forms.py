"""Staff settings forms: they validate shape only; the services decide the rest."""

from __future__ import annotations

from django import forms

from supportdesk.models import MailTemplate


class MailTemplateForm(forms.Form):
    language = forms.RegexField(
        regex=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        max_length=10,
        label="Language",
        error_messages={"invalid": "A language code such as en, es or pt-br."},
    )
    subject = forms.CharField(max_length=300, label="Subject")
    body = forms.CharField(max_length=20_000, label="Text", widget=forms.Textarea)


class MailTemplateKeyForm(forms.Form):
    key = forms.ChoiceField(choices=MailTemplate.Key.choices)


class SignatureForm(forms.Form):
    signature = forms.CharField(
        max_length=2000, required=False, label="Signature", widget=forms.Textarea
    )
