"""Languages: complete catalogues, pages in the browser's (or ``?lang=``) language, the customer's
language detected and stored, surveys and acknowledgements sent in it, and survey wording that
asks for a score refused (docs/api.md "Languages")."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.translation import templatize

from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, MailTemplate
from supportdesk.services import mail_template_save
from surveys.models import Survey, SurveyResponse
from surveys.services import (
    survey_remind,
    survey_token,
    survey_wording_save,
    surveys_send_due,
)
from surveys.services.policy import survey_url
from tests.factories import email_bytes, send_email
from tests.helpers import post_email, web
from tests.surveys.conftest import survey_mails
from tickets import tokens
from tickets.models import Conversation, Customer, Event
from tickets.services import (
    channel_create_or_update,
    channel_mail_settings_update,
    customer_language_set,
)

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
LANGUAGES = ["es", "fr", "de", "pt_BR"]

# Every file a customer reads from: pages, emails, form labels and error messages.
CUSTOMER_FACING = [
    "templates/base.html",
    "templates/tickets/chat.html",
    "surveys/templates/surveys/survey.html",
    "surveys/templates/surveys/expired.html",
    "surveys/templates/surveys/unsubscribe.html",
    "surveys/templates/surveys/too_many.html",
    "surveys/templates/surveys/email.txt",
    "surveys/templates/surveys/email.html",
    "surveys/views.py",
    "surveys/services/answers.py",
    "surveys/services/sending.py",
    "supportdesk/mailtemplates.py",
    "tickets/forms.py",
    "tickets/views_chat.py",
]
# English words that never appear in a Spanish, French, German or Portuguese sentence.
ENGLISH = re.compile(
    r"\b(the|you|your|we|our|were|please|would|with|this|how|any|more|marked|issue|"
    r"request|survey|answer|send|thank|email|again|wait|chat with)\b",
    re.IGNORECASE,
)


def _po_entries(language: str) -> list[dict]:
    """(msgid, msgstr, references, flags) of each entry of a catalogue (makemessages' layout)."""
    text = (ROOT / "locale" / language / "LC_MESSAGES" / "django.po").read_text("utf-8")
    entries = []
    for block in text.strip().split("\n\n"):
        entry = {"msgid": "", "msgstr": "", "refs": [], "flags": [], "field": None}
        for line in block.splitlines():
            if line.startswith("#:"):
                entry["refs"] += [ref.rsplit(":", 1)[0] for ref in line[2:].split()]
            elif line.startswith("#,"):
                entry["flags"] += [flag.strip() for flag in line[2:].split(",")]
            elif line.startswith(("msgid ", "msgstr ")):
                field, _, value = line.partition(" ")
                entry["field"] = field
                entry[field] = _unquote(value)
            elif line.startswith('"') and entry["field"]:
                entry[entry["field"]] += _unquote(line)
        if entry["msgid"]:
            entries.append(entry)
    return entries


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(value: str) -> str:
    """A PO string literal's text (the escapes gettext writes: \\n \\t \\" \\\\)."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), value.strip()[1:-1])


def _marked_msgids(tmp_path: Path) -> set[str]:
    """The msgids marked in the customer-facing files now (what makemessages would collect)."""
    sources = []
    for name in CUSTOMER_FACING:
        path = ROOT / name
        if name.endswith(".py"):
            sources.append(path)
        else:  # templates: Django's own conversion to gettext calls, as makemessages does
            converted = tmp_path / (name.replace("/", "__") + ".py")
            converted.write_text(templatize(path.read_text("utf-8"), origin=name), "utf-8")
            sources.append(converted)
    pot = tmp_path / "out.pot"
    subprocess.run(
        [
            "xgettext", "-L", "Python", "--from-code=UTF-8", "--keyword=gettext_lazy",
            "--keyword=gettext", "--keyword=_", "--keyword=gettext_noop", "-o", str(pot),
            *map(str, sources),
        ],
        check=True,
    )  # fmt: skip
    text = pot.read_text("utf-8")
    entries = []
    for block in text.strip().split("\n\n")[1:]:
        msgid = ""
        field = None
        for line in block.splitlines():
            if line.startswith("msgid "):
                field, msgid = "msgid", _unquote(line[6:])
            elif line.startswith("msgstr"):
                field = None
            elif line.startswith('"') and field:
                msgid += _unquote(line)
        entries.append(msgid)
    return {m for m in entries if m}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_customer_facing_string_is_translated_and_the_catalogue_is_current(
    language, tmp_path
):
    entries = _po_entries(language)
    customer = [e for e in entries if any(ref in CUSTOMER_FACING for ref in e["refs"])]
    untranslated = [e["msgid"] for e in customer if not e["msgstr"].strip()]
    fuzzy = [e["msgid"] for e in customer if "fuzzy" in e["flags"]]
    catalogued = {e["msgid"] for e in entries}
    marked = _marked_msgids(tmp_path)
    missing = marked - catalogued

    assert len(customer) >= 85
    assert len(marked) == len({e["msgid"] for e in customer})
    assert untranslated == []
    assert fuzzy == []
    assert missing == set(), "run manage.py makemessages, translate, then compilemessages"
    # Placeholders survive translation: the same %(name)s and {variables} on both sides.
    for entry in customer:
        for pattern in (r"%\(\w+\)s", r"\{[a-z_.]+\}"):
            assert sorted(re.findall(pattern, entry["msgid"])) == sorted(
                re.findall(pattern, entry["msgstr"])
            ), entry["msgid"]
    # The compiled catalogue in the repository is the one of this .po.
    compiled = ROOT / "locale" / language / "LC_MESSAGES" / "django.mo"
    fresh = tmp_path / "fresh.mo"
    subprocess.run(
        ["msgfmt", "--check", "-o", str(fresh), str(compiled.with_suffix(".po"))], check=True
    )
    assert compiled.read_bytes() == fresh.read_bytes()


def _visible_text(html: str) -> str:
    html = re.sub(r"(?s)<(script|style|head)\b.*?</\1>", " ", html)
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    return " ".join(re.sub(r"https?://\S+|\S+@\S+", " ", text).split())


def _survey_url(survey: Survey, suffix: str = "") -> str:
    return f"/s/{survey_token(survey)}/{suffix}"


@pytest.fixture
def open_survey(sent):
    """A sent survey of an order conversation, and a moment inside its window."""
    survey = sent(subject="Pedido 1234")
    return survey, survey.sent_at + timedelta(hours=2)


@pytest.mark.parametrize("language", ["es", "fr", "de", "pt-br"])
def test_no_english_is_left_on_the_customer_pages(open_survey, channels, language):
    survey, at = open_survey
    Survey.objects.filter(pk=survey.pk).update(asks_nps=True)
    client = Client(headers={"accept-language": language})
    with time_machine.travel(at, tick=False):
        pages = {
            "survey": client.get(_survey_url(survey)),
            "answered": client.post(_survey_url(survey), {"resolved": "no"}, follow=True),
            "error": client.post(_survey_url(survey), {"csat": "9"}),
            "unsubscribe": client.get(_survey_url(survey, "unsubscribe/")),
            "unsubscribed": client.post(_survey_url(survey, "unsubscribe/")),
        }
    with time_machine.travel(survey.expires_at + timedelta(seconds=1), tick=False):
        pages["expired"] = client.get(_survey_url(survey))
    pages["chat start"] = client.get("/chat/")
    client.post("/chat/", {"start": "1", "name": "Ana", "email": "ana@example.com"})
    pages["chat"] = client.get("/chat/")

    statuses = {name: page.status_code for name, page in pages.items()}
    assert statuses == {
        "survey": 200,
        "answered": 200,
        "error": 400,
        "unsubscribe": 200,
        "unsubscribed": 200,
        "expired": 410,
        "chat start": 200,
        "chat": 200,
    }
    for name, page in pages.items():
        html = page.content.decode()
        assert f'<html lang="{language}">' in html, name
        assert page["Content-Language"] == language, name
        # The brand and the customer's own words aside, not one English word.
        text = _visible_text(html).replace("Supportdesk", "").replace("Alice", "")
        assert ENGLISH.findall(text) == [], (name, text)


def test_survey_page_follows_accept_language_and_lang_overrides_it(open_survey):
    survey, at = open_survey
    customer = survey.conversation.customer
    events = Event.objects.count()

    with time_machine.travel(at, tick=False):
        spanish = Client(headers={"accept-language": "es-MX,es;q=0.9,en;q=0.5"}).get(
            _survey_url(survey)
        )
        french = Client(headers={"accept-language": "es"}).get(_survey_url(survey) + "?lang=fr")
        unknown = Client(headers={"accept-language": "it, ja;q=0.8"}).get(_survey_url(survey))

    page = spanish.content.decode()
    assert spanish["Content-Language"] == "es"
    assert "Accept-Language" in spanish["Vary"]
    assert "<legend>¿Se resolvió su problema?</legend>" in page
    assert "<title>¿Se resolvió su problema? · Supportdesk</title>" in page
    assert (
        "Alice la marcó como resuelta. Unas pocas preguntas breves; solo cuentan las que responda."
        in page
    )
    assert "<span>Sí</span>" in page
    assert "<span>En parte</span>" in page
    assert "Enviar mi respuesta</button>" in page
    assert "<small>Muy satisfecho</small>" in page
    page = french.content.decode()
    assert french["Content-Language"] == "fr"
    assert "<legend>Votre problème a-t-il été résolu ?</legend>" in page
    assert "Envoyer ma réponse</button>" in page
    # The form posts (and the unsubscribe link goes) in the chosen language.
    assert f'action="{_survey_url(survey)}?lang=fr"' in page
    assert f'href="{_survey_url(survey, "unsubscribe/")}?lang=fr"' in page
    assert unknown["Content-Language"] == "en"
    assert "<legend>Was your issue resolved?</legend>" in unknown.content.decode()
    # A GET records nothing, not even the language.
    customer.refresh_from_db()
    assert customer.language == ""
    assert Event.objects.count() == events


def test_an_answer_stores_the_language_it_was_given_in_and_keeps_it_through_the_redirect(
    open_survey,
):
    survey, at = open_survey
    client = Client(headers={"accept-language": "en"})

    with time_machine.travel(at, tick=False):
        response = client.post(_survey_url(survey) + "?lang=de", {"resolved": "yes", "csat": "5"})
        thanks = client.get(response["Location"])

    assert response.status_code == 302
    assert response["Location"] == f"{_survey_url(survey)}?saved=1&lang=de"
    assert "<h1>Danke, Ihre Antwort ist gespeichert.</h1>" in thanks.content.decode()
    customer = Customer.objects.get(pk=survey.customer_id)
    assert customer.language == "de"
    event = Event.objects.get(kind="customer.language_set")
    assert (event.customer_id, event.actor_id, event.data) == (
        customer.pk,
        None,
        {"language": "de", "previous": "", "source": "detected"},
    )
    assert SurveyResponse.objects.get().csat == 5


def test_a_bad_answer_is_refused_in_the_customers_language_and_nothing_is_saved(open_survey):
    survey, at = open_survey
    with time_machine.travel(at, tick=False):
        response = Client().post(_survey_url(survey) + "?lang=pt-br", {"csat": "9"})

    assert response.status_code == 400
    page = response.content.decode()
    assert '<div class="alert alert-error" role="alert">Confira suas respostas.</div>' in page
    assert '<p class="field-errors">Escolha de 1 a 5.</p>' in page
    assert SurveyResponse.objects.count() == 0
    assert Customer.objects.get(pk=survey.customer_id).language == ""


def test_chat_page_in_spanish_by_browser_and_french_by_lang_kept_for_the_visit(channels):
    spanish = Client(headers={"accept-language": "es-ES,es;q=0.9"})
    page = spanish.get("/chat/")
    assert page["Content-Language"] == "es"
    assert "<h1>Chatee con nosotros</h1>" in page.content.decode()
    assert "Empezar a chatear</button>" in page.content.decode()
    assert '<label for="id_name">Su nombre (opcional)</label>' in page.content.decode()

    visitor = Client(headers={"accept-language": "es"})
    first = visitor.get("/chat/?lang=fr")
    assert "<h1>Discutez avec nous</h1>" in first.content.decode()
    visitor.post("/chat/", {"start": "1", "name": "", "email": ""})
    visitor.post("/chat/", {"body": "Bonjour, ma commande ?"})
    page = visitor.get("/chat/").content.decode()

    assert "Terminer la discussion</button>" in page
    assert '<span class="chat-who">Vous</span>' in page
    assert 'data-failed="Votre message n\'a pas pu être envoyé. Veuillez réessayer."' in page
    conversation = Conversation.objects.get()
    assert conversation.customer.language == "fr"


def test_content_language_of_an_email_is_stored_when_unknown_and_never_overwrites(channels):
    first = send_email(
        channels["email"],
        sender="Ana <ana@example.com>",
        extra_headers={"Content-Language": "pt-BR, en"},
    )
    customer = Customer.objects.get(pk=first.customer_id)
    assert customer.language == "pt-br"

    send_email(
        channels["email"], sender="ana@example.com", extra_headers={"Content-Language": "de"}
    )
    customer.refresh_from_db()
    assert customer.language == "pt-br"
    assert Event.objects.filter(kind="customer.language_set").count() == 1


@pytest.mark.parametrize(
    "header",
    [
        "",
        "it",
        "x" * 5000,
        "en;drop table",
        "../../etc/passwd",
        "=?utf-8?q?es?=",
        "*",
        "es-" + "a" * 40,
    ],
)
def test_a_missing_unknown_or_hostile_content_language_stores_nothing(channels, header):
    extra = {"Content-Language": header} if header else {}
    result = send_email(channels["email"], sender="bo@example.com", extra_headers=extra)

    assert Customer.objects.get(pk=result.customer_id).language == ""
    assert Event.objects.filter(kind="customer.language_set").count() == 0


def test_the_survey_and_its_reminder_go_out_in_the_customers_language(sent, solve, mailoutbox):
    survey = solve(subject="Pedido 1234")
    customer = survey.conversation.customer
    Customer.objects.filter(pk=customer.pk).update(language="es")
    with time_machine.travel(survey.due_at, tick=False):
        assert surveys_send_due() == 1
    survey.refresh_from_db()

    (email,) = survey_mails()
    tag = tokens.subject_tag(survey.conversation_id)
    assert email.subject == f"¿Resolvimos su solicitud? {tag}"
    assert "Hola:\n\nAlice marcó su solicitud «Pedido 1234» como resuelta." in email.body
    assert "¿Se resolvió su problema?" in email.body
    assert f"  Sí: {survey_url(survey, resolved='yes', lang='es')}\n" in email.body
    assert survey_url(survey, resolved="yes", lang="es").endswith("/?resolved=yes&lang=es")
    html, _ = email.alternatives[0]
    assert '<html lang="es">' in html
    assert ">Darse de baja</a>." in html

    with time_machine.travel(survey.sent_at + timedelta(days=3), tick=False):
        assert survey_remind(survey_id=survey.pk) is True
    reminder = survey_mails()[-1]
    assert reminder.subject == f"Recordatorio: ¿Resolvimos su solicitud? {tag}"
    assert "Hace unos días le preguntamos cómo fue su solicitud." in reminder.body


def test_an_admins_wording_in_the_customers_language_is_used_and_english_wording_is_not(
    solve, admin_user, mailoutbox
):
    mail_template_save(
        key="survey", language="en", subject="How did we do?", body="Hi!", actor=admin_user
    )
    mail_template_save(
        key="survey",
        language="de",
        subject="Wie war es?",
        body="Hallo {customer.first_name}, war alles in Ordnung?",
        actor=admin_user,
    )
    german = solve(sender="Jane Doe <jane@example.com>")
    Customer.objects.filter(pk=german.customer_id).update(language="de")
    french = solve(sender="Rémi <remi@example.com>", subject="Commande")
    Customer.objects.filter(pk=french.customer_id).update(language="fr")
    with time_machine.travel(german.due_at + timedelta(minutes=1), tick=False):
        assert surveys_send_due() == 2

    by_to = {m.to[0]: m for m in survey_mails()}
    de = by_to["jane@example.com"]
    assert de.subject == f"Wie war es? {tokens.subject_tag(german.conversation_id)}"
    assert de.body.startswith("Hallo Jane, war alles in Ordnung?\n\nWurde Ihr Problem gelöst?")
    fr = by_to["remi@example.com"]
    # No French wording stored: the built-in French, not the admin's English.
    assert (
        fr.subject
        == f"Avons-nous résolu votre demande ? {tokens.subject_tag(french.conversation_id)}"
    )


@pytest.fixture
def mailbox(team_a):
    return channel_create_or_update(
        kind="email", name="Help inbox", team_name="Team A", address="help@desk.example"
    )


@pytest.mark.django_db(transaction=True)  # the acknowledgement leaves after commit
def test_the_acknowledgement_goes_out_in_the_language_of_the_email(
    smtp_server, mailbox, admin_user
):
    channel_mail_settings_update(
        channel=mailbox, from_name="", signature="", acknowledge=True, actor=admin_user
    )
    raw = email_bytes(
        sender="Jana Weber <jana@example.com>",
        to="help@desk.example",
        subject="Bestellung",
        extra_headers={"Content-Language": "de-DE"},
    )
    assert post_email(mailbox, raw).status_code == 201

    (sent,) = smtp_server.received
    conversation = Conversation.objects.get()
    assert sent.message["Subject"] == f"Re: Bestellung {tokens.subject_tag(conversation.pk)}"
    text = sent.message.get_body(("plain",)).get_content().replace("\r\n", "\n").strip()
    assert text.startswith(
        "Hallo Jana,\n\nwir haben Ihre Nachricht erhalten und antworten so bald wie möglich."
    )
    assert conversation.customer.language == "de"


SOLICITING = [
    "Please rate us 10!",
    "A 5 would help me a lot.",
    "Bitte... rate us 10",
    "Leave us a 10",
]


@pytest.mark.parametrize("wording", SOLICITING)
def test_wording_that_asks_for_a_score_is_refused_with_the_reason_and_nothing_is_saved(
    admin_user, wording
):
    audits = AuditEntry.objects.count()
    response = web(admin_user).post(
        "/settings/email-templates/survey/?language=es",
        {"language": "es", "subject": "¿Qué tal?", "body": f"Hola,\n\n{wording}"},
    )

    assert response.status_code == 400
    page = unescape(response.content.decode())
    assert "This wording asks for a score (“" in page
    assert "Surveys must not suggest an answer" in page
    assert MailTemplate.objects.count() == 0
    assert AuditEntry.objects.count() == audits
    with pytest.raises(ApplicationError, match="asks for a score"):
        mail_template_save(
            key="survey_reminder", language="de", subject=wording, body="Hallo", actor=admin_user
        )
    assert MailTemplate.objects.count() == 0


def test_neutral_wording_is_saved_and_the_integrity_panel_uses_the_same_detector(admin_user):
    import metrics.facts
    import supportdesk.solicitation

    response = web(admin_user).post(
        "/settings/email-templates/survey/?language=es",
        {"language": "es", "subject": "¿Todo bien?", "body": "Hola, cuéntenos cómo fue."},
    )

    assert response.status_code == 302
    assert list(MailTemplate.objects.values_list("key", "language", "subject")) == [
        ("survey", "es", "¿Todo bien?")
    ]
    assert metrics.facts.SOLICITATION_PATTERN is supportdesk.solicitation.SOLICITATION_PATTERN


def test_agents_see_and_change_the_customers_language_in_the_panel(channels, agent_a, agent_b):
    result = send_email(channels["email"], sender="ana@example.com")
    url = f"/customers/{result.customer_id}/language/"
    page = web(agent_a).get(f"/conversations/{result.conversation_id}/").content.decode()
    assert '<option value="" selected>Not known (default)</option>' in page

    saved = web(agent_a).post(url, {"language": "pt-br", "conversation": result.conversation_id})
    page = web(agent_a).get(f"/conversations/{result.conversation_id}/").content.decode()
    refused = web(agent_a).post(
        url, {"language": "klingon", "conversation": result.conversation_id}
    )
    foreign = web(agent_b).post(url, {"language": "de", "conversation": result.conversation_id})

    assert saved.status_code == 302
    assert '<option value="pt-br" selected>Português (Brasil)</option>' in page
    assert refused.status_code == 400
    assert "Choose one of the languages: en, es, fr, de, pt-br." in unescape(
        refused.content.decode()
    )
    assert foreign.status_code == 404
    assert Customer.objects.get(pk=result.customer_id).language == "pt-br"
    event = Event.objects.get(kind="customer.language_set")
    assert (event.actor_id, event.data["source"], event.data["language"]) == (
        agent_a.pk,
        "staff",
        "pt-br",
    )
    # Setting it again changes nothing and records nothing.
    customer_language_set(
        customer=Customer.objects.get(pk=result.customer_id), language="pt-BR", actor=agent_a
    )
    assert Event.objects.filter(kind="customer.language_set").count() == 1


def test_admins_word_the_survey_page_per_language_with_a_preview(open_survey, admin_user, agent_a):
    from surveys.models import SurveyWording

    survey, at = open_survey
    admin = web(admin_user)
    page = admin.get("/settings/survey-page/?language=es")
    preview = admin.post(
        "/settings/survey-page/preview/",
        {
            "intro": "**{agent.first_name}** cerró «{conversation.subject}». {{ evil }}",
            "thanks": "",
        },
    )
    saved = admin.post(
        "/settings/survey-page/?language=es",
        {"intro": "{agent.first_name} dio su solicitud por resuelta.", "thanks": "¡Gracias!"},
    )
    with time_machine.travel(at, tick=False):
        spanish = Client().get(_survey_url(survey) + "?lang=es").content.decode()
        english = Client().get(_survey_url(survey)).content.decode()

    assert page.status_code == 200
    assert "Alice la marcó como resuelta." in page.content.decode()  # the built-in, shown
    assert preview.status_code == 200
    assert (
        "<strong>Alice</strong> cerró «My order has not arrived». {{ evil }}"
        in preview.content.decode()
    )
    assert saved.status_code == 302
    assert list(SurveyWording.objects.values_list("language", "intro", "thanks")) == [
        ("es", "{agent.first_name} dio su solicitud por resuelta.", "¡Gracias!")
    ]
    assert (
        '<div class="muted survey-intro"><p>Alice dio su solicitud por resuelta.</p></div>'
        in spanish
    )
    assert "Alice marked it as solved. A few short questions" in english
    assert AuditEntry.objects.filter(action="mail_template.saved").count() == 1
    assert agent_a
    assert web(agent_a).get("/settings/survey-page/").status_code == 403


@pytest.mark.parametrize("wording", SOLICITING)
def test_survey_page_wording_that_asks_for_a_score_is_refused_and_nothing_is_saved(
    admin_user, wording
):
    from surveys.models import SurveyWording

    audits = AuditEntry.objects.count()
    response = web(admin_user).post(
        "/settings/survey-page/?language=fr",
        {"intro": "Merci d'avoir écrit.", "thanks": wording},
    )

    assert response.status_code == 400
    page = unescape(response.content.decode())
    assert '<div class="alert alert-error" role="alert">This wording asks for a score (“' in page
    assert wording in page  # what was typed stays in the form
    assert SurveyWording.objects.count() == 0
    assert AuditEntry.objects.count() == audits


def test_the_survey_page_reads_its_wording_in_one_query_however_many_languages_are_written(
    open_survey, admin_user, django_assert_num_queries
):
    survey, at = open_survey
    client = Client(headers={"accept-language": "pt-br"})
    with time_machine.travel(at, tick=False):
        client.get(_survey_url(survey))  # warm: the rate-limit cache
        with CaptureQueriesContext(connection) as none_written:
            client.get(_survey_url(survey))
        for code in ("en", "es", "fr", "de", "pt-br"):
            survey_wording_save(language=code, intro=f"Intro {code}", thanks="", actor=admin_user)
        with django_assert_num_queries(len(none_written.captured_queries)):
            page = client.get(_survey_url(survey))

    assert "<p>Intro pt-br</p>" in page.content.decode()
    reads = [q for q in none_written.captured_queries if "surveys_surveywording" in q["sql"]]
    assert len(reads) == 1
