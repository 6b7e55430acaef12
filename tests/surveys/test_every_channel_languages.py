"""The channel survey and the chat widget speak the customer's language: the survey message in
the transcript, the inline questions, the widget's chat and its script's button."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
import time_machine
from django.conf import settings
from django.test import Client

from surveys.models import Survey, SurveyResponse
from surveys.services import survey_token, surveys_send_due
from tests.surveys.conftest import SOLVED_AT
from tests.surveys.test_languages import ENGLISH
from tickets.models import Conversation, Customer, Message
from tickets.services import channel_set_widget, conversation_solve

pytestmark = pytest.mark.django_db

MESSAGE = {
    "es": "¿Resolvimos su solicitud? Díganoslo en unos pocos clics:",
    "fr": "Avons-nous résolu votre demande ? Dites-le-nous en quelques clics :",
    "de": "Haben wir Ihr Anliegen gelöst? Sagen Sie es uns mit wenigen Klicks:",
    "pt-br": "Resolvemos sua solicitação? Conte para nós em poucos cliques:",
}
BUTTON = {
    "es": ("Chatee con nosotros", "Cerrar el chat"),
    "fr": ("Discutez avec nous", "Fermer la discussion"),
    "de": ("Chatten Sie mit uns", "Chat schließen"),
    "pt-br": ("Converse conosco", "Fechar o chat"),
}


def _text(html: str) -> str:
    html = re.sub(r"(?s)<(script|style|head)\b.*?</\1>", " ", html)
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    return " ".join(re.sub(r"https?://\S+|\S+@\S+", " ", text).split())


@pytest.mark.parametrize("language", ["es", "fr", "de", "pt-br"])
def test_a_widget_visitor_is_surveyed_inline_in_their_language(
    channels, agent_a, language, django_capture_on_commit_callbacks
):
    chat = channel_set_widget(channel=channels["chat"], origins=["https://shop.example"])
    key = chat.widget_key
    visitor = Client(headers={"accept-language": f"{language},en;q=0.5"})

    script = visitor.get(f"/widget/{key}.js")
    assert script["Content-Language"] == language
    label, close = BUTTON[language]
    assert f'var label = "{label}";' in script.content.decode("unicode_escape")
    assert f'var close = "{close}";' in script.content.decode("unicode_escape")

    pages = {"widget start": visitor.get(f"/widget/{key}/")}
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        visitor.post(f"/widget/{key}/", {"start": "1", "name": "", "email": ""})
        assert visitor.post(f"/widget/{key}/", {"body": "Hola"}).status_code == 302
    conversation = Conversation.objects.get()
    customer = Customer.objects.get(pk=conversation.customer_id)
    assert customer.language == language  # the chat page's language is the customer's

    capture = django_capture_on_commit_callbacks
    with time_machine.travel(SOLVED_AT, tick=False), capture(execute=True):
        event = conversation_solve(conversation=conversation, actor=agent_a, at=SOLVED_AT)
    survey = Survey.objects.get(event=event)
    with time_machine.travel(survey.due_at, tick=False), capture(execute=True):
        surveys_send_due()
    survey.refresh_from_db()
    assert (survey.status, survey.via) == ("sent", "chat")

    # The transcript message is in the customer's language and its link keeps it.
    token = survey_token(survey)
    message = Message.objects.get(automated="survey")
    assert message.body_text == (
        f"{MESSAGE[language]} {settings.SITE_URL}/s/{token}/?lang={language}"
    )

    inline = f"/s/{token}/inline/?lang={language}"
    with time_machine.travel(survey.sent_at + timedelta(minutes=5), tick=False):
        pages["widget chat"] = visitor.get(f"/widget/{key}/")
        assert f'src="{inline}"' in pages["widget chat"].content.decode()
        # The inline questions, in any browser: the customer's language is in the frame's URL.
        pages["inline survey"] = Client().get(inline)
        posted = visitor.post(inline, {"resolved": "yes", "csat": "5"})
        assert posted.status_code == 302
        assert posted["Location"] == f"/s/{token}/inline/?saved=1&lang={language}"
        pages["inline saved"] = visitor.get(posted["Location"])
        pages["inline error"] = visitor.post(inline, {"csat": "9"})

    statuses = {name: page.status_code for name, page in pages.items()}
    assert statuses == {
        "widget start": 200,
        "widget chat": 200,
        "inline survey": 200,
        "inline saved": 200,
        "inline error": 400,
    }
    for name, page in pages.items():
        html = page.content.decode()
        assert f'<html lang="{language}">' in html, name
        assert page["Content-Language"] == language, name
        text = _text(html).replace("Supportdesk", "").replace("Hola", "")
        assert ENGLISH.findall(text) == [], (name, text)
    response = SurveyResponse.objects.get()
    assert (response.survey_id, response.resolved, response.csat) == (survey.pk, "yes", 5)
