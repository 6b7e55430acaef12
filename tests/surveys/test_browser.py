"""The customer's side in Chromium: the email the app sent, its link, the answer, what staff see."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from supportdesk.models import Notification
from surveys.models import Survey, SurveyResponse
from surveys.services import surveys_send_due
from tests.browser import SHOTS, login, watch_console
from tests.factories import send_email
from tickets.models import Conversation
from tickets.services import conversation_solve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _survey_email_link(live_server, channel, agent, *, sender: str, subject: str, answer: str):
    """A customer writes, the agent solves it, beat sends the survey: the link for ``answer``
    in the email the app sent (the test's mail backend captured it)."""
    result = send_email(channel, sender=sender, subject=subject)
    conversation = Conversation.objects.get(pk=result.conversation_id)
    event = conversation_solve(
        conversation=conversation, actor=agent, at=timezone.now() - timedelta(hours=2)
    )
    mail.outbox.clear()
    assert surveys_send_due() == 1
    (email,) = mail.outbox
    assert email.to == [re.search(r"<(.+)>", sender)[1]]
    link = re.search(rf"(http\S+/s/\S+/)\?resolved={answer}", email.body)
    assert link, email.body
    path = link[0].split("/s/", 1)[1]
    return conversation, Survey.objects.get(event=event), f"{live_server.url}/s/{path}"


def test_a_customer_answers_no_and_the_agent_finds_the_conversation_reopened(
    page, live_server, channels, agent_a
):
    problems = watch_console(page)
    conversation, survey, url = _survey_email_link(
        live_server,
        channels["email"],
        agent_a,
        sender="Jane Doe <jane@example.com>",
        subject="My parcel never arrived",
        answer="no",
    )

    # The customer opens the "No" link from the email: the page opens with "No" selected
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("My parcel never arrived")
    expect(page.get_by_role("radio", name="No", exact=True)).to_be_checked()
    assert SurveyResponse.objects.count() == 0  # opening records nothing
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "survey.png"), full_page=True)
    page.get_by_label("Anything you would like to tell us?").fill("It is still not here.")
    page.get_by_role("button", name="Send my answer").click()
    expect(page.get_by_role("status")).to_contain_text("your answer is saved")
    expect(page.get_by_role("status")).to_contain_text("Your request is open again")
    page.screenshot(path=str(SHOTS / "survey-thanks.png"), full_page=False)

    # The conversation is open again and its agent was told
    conversation.refresh_from_db()
    assert conversation.status == "open"
    response = SurveyResponse.objects.get(survey=survey)
    assert (response.resolved, response.comment) == ("no", "It is still not here.")
    assert Notification.objects.filter(recipient=agent_a, kind="survey.not_resolved").count() == 1

    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, agent_a)
    page.get_by_role("link", name=re.compile("^Notifications")).click()
    expect(page.get_by_role("main")).to_contain_text(f"#{conversation.pk} not resolved")
    expect(page.get_by_role("main")).to_contain_text("It is still not here.")
    assert problems == []


def test_a_customer_answers_yes_with_a_shout_out_and_the_agent_sees_it(
    page, live_server, channels, agent_a
):
    problems = watch_console(page)
    conversation, survey, url = _survey_email_link(
        live_server,
        channels["email"],
        agent_a,
        sender="Omar Haddad <omar@example.org>",
        subject="Change my delivery address",
        answer="yes",
    )

    page.goto(url)
    expect(page.get_by_role("radio", name="Yes", exact=True)).to_be_checked()
    # "I need nothing more" only matters for "Partly"
    expect(page.get_by_label("I need nothing more")).to_be_hidden()
    page.get_by_role("radio", name="5 Very satisfied").check()
    page.get_by_label("Give Alice a shout-out").check()
    page.get_by_label("Anything you would like to tell us?").fill("Alice was brilliant.")
    page.get_by_role("button", name="Send my answer").click()
    expect(page.get_by_role("status")).to_contain_text("your answer is saved")

    response = SurveyResponse.objects.get(survey=survey)
    assert (response.resolved, response.csat, response.shout_out) == ("yes", 5, True)
    conversation.refresh_from_db()
    assert conversation.status == "closed"  # the customer confirmed it

    login(page, live_server, agent_a)
    page.get_by_text("More", exact=True).click()  # the top bar's menu of weekly pages
    page.get_by_role("link", name="My feedback", exact=True).click()
    shout_outs = page.get_by_role("region", name="Shout-outs")
    expect(shout_outs).to_contain_text("Shout-out")
    expect(shout_outs).to_contain_text("Alice was brilliant.")
    expect(shout_outs).to_contain_text(f"#{conversation.pk}")
    assert problems == []


def test_a_spanish_customer_gets_the_survey_in_spanish_on_a_wide_screen_and_a_phone(
    page, browser, live_server, channels, agent_a
):
    problems = watch_console(page)
    result = send_email(
        channels["email"],
        sender="Lucía Gómez <lucia@example.com>",
        subject="Pedido 1234 sin entregar",
        extra_headers={"Content-Language": "es-ES"},
    )
    conversation = Conversation.objects.get(pk=result.conversation_id)
    assert conversation.customer.language == "es"
    event = conversation_solve(
        conversation=conversation, actor=agent_a, at=timezone.now() - timedelta(hours=2)
    )
    mail.outbox.clear()
    assert surveys_send_due() == 1
    (email,) = mail.outbox
    assert email.subject == f"¿Resolvimos su solicitud? [#{conversation.pk}]"
    link = re.search(r"http\S+/s/(\S+/)\?resolved=yes&lang=es", email.body)
    assert link, email.body
    url = f"{live_server.url}/s/{link[1]}?resolved=yes&lang=es"

    # An English browser following the Spanish email's link: the page is in Spanish.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Su solicitud: Pedido 1234 sin entregar"
    )
    expect(page.get_by_role("radio", name="Sí", exact=True)).to_be_checked()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "survey-es-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "survey-es-phone.png"), full_page=True)
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_label("¿Algo que quiera contarnos?").fill("Llegó ayer, gracias.")
    page.get_by_role("button", name="Enviar mi respuesta").click()
    expect(page.get_by_role("status")).to_contain_text("Gracias, su respuesta se ha guardado.")
    response = SurveyResponse.objects.get(survey__event=event)
    assert (response.resolved, response.comment) == ("yes", "Llegó ayer, gracias.")

    # A Spanish browser without ?lang=: the page follows Accept-Language.
    context = browser.new_context(locale="es-ES")
    try:
        spanish = context.new_page()
        spanish.goto(f"{live_server.url}/s/{link[1]}")
        expect(spanish.get_by_role("group", name="¿Se resolvió su problema?")).to_be_visible()
        expect(spanish.locator("html")).to_have_attribute("lang", "es")
    finally:
        context.close()
    assert problems == []


def test_an_admin_words_the_spanish_survey_page_and_sees_the_customers_language(
    page, live_server, channels, admin_user
):
    problems = watch_console(page)
    result = send_email(
        channels["email"],
        sender="Lucía <lucia@example.com>",
        subject="Factura",
        extra_headers={"Content-Language": "es"},
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, admin_user)

    page.goto(f"{live_server.url}/settings/survey-page/?language=es")
    page.get_by_label("Introduction").fill("Hola, {agent.first_name} cerró **su solicitud**.")
    expect(page.locator("#wording-preview")).to_contain_text("Hola, Alice cerró su solicitud.")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "survey-wording.png"), full_page=True)
    page.get_by_label("After an answer").fill("Please rate us 10")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("This wording asks for a score")
    page.get_by_label("After an answer").fill("¡Gracias por contarnos!")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved (es).")

    page.goto(f"{live_server.url}/conversations/{result.conversation_id}/")
    select = page.get_by_label("Writes in")
    expect(select).to_have_value("es")
    select.select_option("de")
    page.locator(".customer-language").get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Language of Lucía: Deutsch.")
    expect(page.get_by_label("Writes in")).to_have_value("de")
    page.locator(".customer-panel").screenshot(path=str(SHOTS / "customer-language.png"))
    # The refused save answered 400 by design (Chromium logs that); nothing else went wrong.
    assert problems == [
        "console: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
