from django import forms

from notifications.models import EmailMode


class PreferenceForm(forms.Form):
    email = forms.ChoiceField(choices=EmailMode.choices, widget=forms.RadioSelect, label="Email me")
