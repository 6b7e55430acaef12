"""The chat widget in Chromium, as a customer meets it on a company's own site.

A page served by a plain ``http.server`` on another origin (another port on localhost; the same
page at 127.0.0.1 is an origin nobody configured) embeds the widget's script; a visitor with no
email and a Spanish browser chats, the agent solves, the survey appears inline at the end of
the chat in Spanish, the visitor answers, and the manager's dashboard shows the answer and the
chat channel's coverage.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from metrics.services import facts_compute
from surveys.models import Survey, SurveyResponse
from surveys.services import surveys_send_due
from tests.browser import SHOTS, login, screenshot, watch_console
from tests.services import free_port
from tickets.models import Conversation, Message
from tickets.services import channel_set_widget, conversation_solve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@contextmanager
def company_site(tmp_path: Path, script_url: str) -> Iterator[int]:
    """The company's own page, with the snippet pasted in, served on a free port (all hosts)."""
    (tmp_path / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Shop</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'></head>"
        "<body><h1>Our shop</h1><p>Questions? Chat with us.</p>"
        f"<script src='{script_url}' async></script></body></html>"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


def test_a_visitor_chats_in_the_widget_and_answers_the_survey_inline(
    browser, live_server, settings, channels, manager_a, agent_a, admin_user, tmp_path
):
    settings.SITE_URL = live_server.url
    chat = channel_set_widget(channel=channels["chat"], origins=[])
    script_url = f"{live_server.url}/widget/{chat.widget_key}.js"
    # A visitor whose browser asks for Spanish (Accept-Language: es-ES).
    visitor = browser.new_context(locale="es-ES", viewport={"width": 1280, "height": 900})
    page = visitor.new_page()
    problems = watch_console(page)
    with company_site(tmp_path, script_url) as port:
        chat = channel_set_widget(channel=chat, origins=[f"http://localhost:{port}"])
        # A phone: the widget opens over the whole page.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"http://localhost:{port}/")
        page.get_by_role("button", name="Chatee con nosotros").click()
        frame = page.frame_locator("#supportdesk-widget iframe")
        expect(frame.get_by_role("heading", name="Chatee con nosotros")).to_be_visible()
        expect(page.get_by_role("button", name="Cerrar el chat")).to_be_visible()
        box = page.locator("#supportdesk-widget iframe").bounding_box()
        assert box is not None
        # Under the "Close chat" bar, the rest of the screen.
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 60, 390, 784)
        screenshot(page, "widget-start-phone")
        frame.get_by_role("button", name="Empezar a chatear").click()
        frame.get_by_label("Su mensaje").fill("La página de mi pedido muestra un error")
        frame.get_by_role("button", name="Enviar", exact=True).click()
        expect(frame.locator(".chat-inbound")).to_contain_text("La página de mi pedido")

        message = Message.objects.get(direction="inbound")
        assert message.channel_id == chat.pk
        conversation = Conversation.objects.get(pk=message.conversation_id)
        assert conversation.team.name == "Team A"
        assert not conversation.customer.identities.filter(kind="email").exists()
        assert conversation.customer.language == "es"

        # The agent solves; the survey is due (its delay passed) and beat sends it.
        event = conversation_solve(
            conversation=conversation, actor=agent_a, at=timezone.now() - timedelta(hours=2)
        )
        assert surveys_send_due() == 1
        survey = Survey.objects.get(event=event)
        assert (survey.status, survey.via) == ("sent", "chat")

        # The chat shows the survey message and its questions inline.
        expect(frame.locator(".chat-survey-line")).to_contain_text("¿Resolvimos su solicitud?")
        inline = frame.frame_locator(".chat-inline-frame")
        expect(inline.get_by_text("¿Se resolvió su problema?")).to_be_visible(timeout=15000)
        expect(inline.locator("html")).to_have_attribute("lang", "es")
        screenshot(page, "widget-survey-inline-phone")
        inline.get_by_role("radio", name="Sí", exact=True).check()
        inline.get_by_role("radio", name="5 Muy satisfecho").check()
        inline.get_by_role("button", name="Enviar mi respuesta").click()
        saved = inline.get_by_role("heading", name="Gracias, su respuesta se ha guardado.")
        expect(saved).to_be_visible()
        # The transcript keeps polling: the answered frame stays (it is preserved by htmx).
        page.wait_for_timeout(4500)
        expect(saved).to_be_visible()
        response = SurveyResponse.objects.get()
        assert (response.survey_id, response.resolved, response.csat) == (survey.pk, "yes", 5)
        assert problems == []

        # The same page on an origin nobody configured cannot frame the chat.
        blocked = visitor.new_page()
        refused: list[str] = []
        blocked.on("console", lambda msg: refused.append(msg.text))
        blocked.goto(f"http://127.0.0.1:{port}/")
        blocked.get_by_role("button", name="Chatee con nosotros").click()
        blocked.wait_for_timeout(1500)
        framed = blocked.frames[1] if len(blocked.frames) > 1 else None
        assert (
            framed is None
            or framed.url in ("", "about:blank")
            or not framed.content().count("Empezar a chatear")
        )
        assert any("frame-ancestors" in text for text in refused), refused
        blocked.close()
        visitor.close()

    # The manager's dashboard: the answer and the chat channel's coverage.
    today = timezone.localdate()
    facts_compute(day_from=today - timedelta(days=1), day_to=today + timedelta(days=1))
    staff = browser.new_page()
    staff.set_viewport_size({"width": 1280, "height": 900})
    login(staff, live_server, manager_a)
    day_from = (today - timedelta(days=1)).isoformat()
    day_to = (today + timedelta(days=1)).isoformat()
    staff.goto(f"{live_server.url}/dashboard/?period=custom&from={day_from}&to={day_to}")
    row = staff.locator("#channel-coverage tr[data-channel='chat']")
    expect(row.locator("[data-key=solves]")).to_have_text("1")
    expect(row.locator("[data-key=surveyed]")).to_have_text("1")
    expect(row.locator("[data-key=answered]")).to_have_text("1")
    expect(row.locator("[data-key=not_reachable]")).to_have_text("0")
    expect(row.locator("[data-key=survey_reach_rate]")).to_have_text("100%")
    expect(row.locator("[data-key=survey_response_rate]")).to_have_text("100%")
    expect(row.locator("[data-key=resolution_rate]")).to_contain_text("100%")
    staff.locator("#channel-coverage").scroll_into_view_if_needed()
    staff.screenshot(path=str(SHOTS / "dashboard-channel-coverage.png"))
    staff.close()

    # The admin finds the snippet to paste on the configured site.
    admin = browser.new_page()
    admin.set_viewport_size({"width": 1280, "height": 900})
    login(admin, live_server, admin_user)
    admin.goto(f"{live_server.url}/settings/channels/")
    snippet = admin.get_by_label("Snippet: paste it before")
    expect(snippet).to_have_value(f'<script src="{script_url}" async></script>')
    expect(admin.locator(f"#origins-{chat.pk}")).to_have_value(f"http://localhost:{port}")
    screenshot(admin, "channel-widget-settings")
    admin.screenshot(path=str(SHOTS / "channel-widget-settings-full.png"), full_page=True)
    admin.close()
