"""Surveys on every channel: a customer with no deliverable email is surveyed where they wrote.

Chat: an automated message in the chat session's transcript (its link opens the questions inline
in the chat page or widget). Social: a signed webhook to the channel's receiver (a real local HTTP
server). Every survey rule holds on the new paths, and the coverage is counted per channel.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import date, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from metrics.services import facts_compute
from surveys.models import Survey, SurveyResponse
from surveys.services import (
    survey_settings_update,
    survey_token,
    surveys_remind_due,
    surveys_send_due,
)
from tests.conftest import client_for
from tests.factories import send_call, send_chat, send_email, send_social
from tests.services import require_postgres, webhook_receiver
from tests.surveys.conftest import SOLVED_AT, survey_mails
from tickets.models import Channel, Conversation, Event, Message
from tickets.selectors import chat_transcript
from tickets.services import (
    channel_set_surveyed,
    channel_set_webhook,
    channel_set_widget,
    conversation_solve,
    webhook_signature,
)

LINK = re.compile(re.escape(settings.SITE_URL) + r"/s/([^/\s]+)/")


def _solve(conversation, agent, at=SOLVED_AT, capture=None):
    with time_machine.travel(at, tick=False), capture(execute=True):
        event = conversation_solve(conversation=conversation, actor=agent, at=at)
    return Survey.objects.get(event=event)


def _send_due(survey, capture):
    with time_machine.travel(survey.due_at, tick=False), capture(execute=True):
        surveys_send_due()
    survey.refresh_from_db()
    return survey


def _chat_conversation(channel, **kwargs):
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        result = send_chat(channel, body="Hi, my app crashes", **kwargs)
    return Conversation.objects.get(pk=result.conversation_id)


def test_a_chat_customer_without_email_gets_the_survey_in_their_chat_session(
    channels, agent_a, mailoutbox, django_capture_on_commit_callbacks
):
    conversation = _chat_conversation(channels["chat"], session_id="s-42")
    survey = _send_due(
        _solve(conversation, agent_a, capture=django_capture_on_commit_callbacks),
        django_capture_on_commit_callbacks,
    )

    assert (survey.status, survey.skip_reason, survey.via) == ("sent", "", "chat")
    assert survey.email == ""
    assert survey.sent_at == survey.due_at
    assert survey.expires_at == survey.due_at + timedelta(days=settings.SURVEY_WINDOW_DAYS)
    message = survey.channel_message
    assert message is not None
    assert (message.direction, message.channel_id, message.thread_key) == (
        "outbound",
        channels["chat"].pk,
        "s-42",
    )
    assert (message.author_id, message.automated, message.delivery_state) == (
        None,
        "survey",
        "queued",
    )
    url = f"{settings.SITE_URL}/s/{survey_token(survey)}/"
    assert message.body_text == f"Did we resolve your request? Tell us in a few clicks: {url}"
    # The visitor's transcript shows it; the survey went by no email.
    transcript = chat_transcript(channel=channels["chat"], session_id="s-42")
    assert [m.pk for m in transcript][-1] == message.pk
    assert survey_mails() == []
    event = Event.objects.get(kind="message.automated")
    assert (event.message_id, event.conversation_id, event.data) == (
        message.pk,
        conversation.pk,
        {"automated": "survey"},
    )
    # The conversation API shows the message to the agent.
    body = client_for(agent_a).get(f"/api/v1/conversations/{conversation.pk}/").json()
    shown = [m for m in body["messages"] if m["id"] == message.pk]
    assert shown[0]["automated"] == "survey"
    assert shown[0]["author"] is None
    assert url in shown[0]["body_text"]
    # The conversation itself did not change: nobody replied.
    conversation.refresh_from_db()
    assert conversation.status == "solved"
    # A channel survey gets no email reminder.
    with time_machine.travel(survey.sent_at + timedelta(days=5), tick=False):
        assert surveys_remind_due() == 0


def test_a_social_only_customer_gets_the_link_through_the_webhook_and_answers_it(
    channels, agent_a, django_capture_on_commit_callbacks
):
    social = channels["social"]
    with webhook_receiver() as receiver:
        social = channel_set_webhook(channel=social, webhook_url=receiver.url)
        with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
            result = send_social(social, handle="@jane", network="x")
        conversation = Conversation.objects.get(pk=result.conversation_id)
        survey = _send_due(
            _solve(conversation, agent_a, capture=django_capture_on_commit_callbacks),
            django_capture_on_commit_callbacks,
        )
        assert (survey.status, survey.via) == ("sent", "social")
        assert len(receiver.accepted) == 1
    payload = json.loads(receiver.accepted[0])
    assert payload["type"] == "message.outbound"
    assert payload["conversation_id"] == conversation.pk
    assert payload["to"] == {"kind": "social", "value": "x:jane"}
    assert payload["author"] is None
    token = LINK.search(payload["body"]).group(1)
    assert token == survey_token(survey)
    message = Message.objects.get(pk=payload["message_id"])
    assert message.delivery_state == "sent"
    assert survey.channel_message_id == message.pk
    # The signature is the channel's, as for agents' replies.
    assert webhook_signature(
        secret=Channel.objects.get(pk=social.pk).secret, timestamp="1", body=b"x"
    ).startswith("sha256=")

    client = Client()
    with time_machine.travel(survey.sent_at + timedelta(hours=1), tick=False):
        assert client.get(f"/s/{token}/").status_code == 200
        assert SurveyResponse.objects.count() == 0  # GET records nothing
        answered = client.post(f"/s/{token}/", {"resolved": "yes", "csat": "5", "contacts": "1"})
    assert answered.status_code == 302
    response = SurveyResponse.objects.get()
    assert (response.survey_id, response.resolved, response.csat) == (survey.pk, "yes", 5)


def test_survey_reach_rate_and_coverage_per_channel(
    channels, agent_a, admin_user, django_capture_on_commit_callbacks
):
    """Four solves: email (answered), chat without email (answered), social with no webhook (not
    reachable), phone (not reachable). Exact figures per channel and for the desk."""
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        email_conv = send_email(channels["email"], sender="Ann <ann@example.com>").conversation_id
        chat_conv = send_chat(channels["chat"], session_id="c1", visitor_id="v1").conversation_id
        social_conv = send_social(channels["social"], handle="@bob").conversation_id
        phone_conv = send_call(channels["phone"], from_number="+1 415 555 0199").conversation_id
    surveys = {}
    for kind, pk in (
        ("email", email_conv),
        ("chat", chat_conv),
        ("social", social_conv),
        ("phone", phone_conv),
    ):
        surveys[kind] = _solve(Conversation.objects.get(pk=pk), agent_a, capture=capture)
    for kind in surveys:
        surveys[kind] = _send_due(surveys[kind], capture)
    assert {k: (s.status, s.skip_reason, s.via) for k, s in surveys.items()} == {
        "email": ("sent", "", "email"),
        "chat": ("sent", "", "chat"),
        "social": ("skipped", "no_email", ""),
        "phone": ("skipped", "no_email", ""),
    }
    client = Client()
    with time_machine.travel(SOLVED_AT + timedelta(hours=2), tick=False):
        for kind, resolved in (("email", "yes"), ("chat", "no")):
            token = survey_token(surveys[kind])
            assert client.post(f"/s/{token}/", {"resolved": resolved}).status_code == 302
        facts_compute(day_from=date(2026, 3, 2), day_to=date(2026, 3, 3))
        api = client_for(admin_user)
        query = "from=2026-03-02&to=2026-03-03"
        desk = api.get(f"/api/v1/scorecards/?{query}").json()["groups"][0]["metrics"]
        by_channel = {
            g["key"]: g["metrics"]
            for g in api.get(f"/api/v1/scorecards/?{query}&group_by=channel").json()["groups"]
        }
    assert desk["survey_reach_rate"]["value"] == 0.5
    assert desk["survey_reach_rate"]["n"] == 4
    assert desk["survey_response_rate"]["value"] == 1.0
    assert desk["survey_coverage"] == {
        "solves": 4,
        "surveyed": 2,
        "answered": 2,
        "not_reachable": 2,
    }
    assert {k: m["survey_coverage"] for k, m in by_channel.items()} == {
        "email": {"solves": 1, "surveyed": 1, "answered": 1, "not_reachable": 0},
        "chat": {"solves": 1, "surveyed": 1, "answered": 1, "not_reachable": 0},
        "social": {"solves": 1, "surveyed": 0, "answered": 0, "not_reachable": 1},
        "phone": {"solves": 1, "surveyed": 0, "answered": 0, "not_reachable": 1},
    }
    assert {k: m["survey_reach_rate"]["value"] for k, m in by_channel.items()} == {
        "email": 1.0,
        "chat": 1.0,
        "social": 0.0,
        "phone": 0.0,
    }
    assert by_channel["chat"]["resolution_rate"]["value"] == 0.0


def test_a_channel_an_admin_turned_off_is_not_surveyed(
    channels, agent_a, django_capture_on_commit_callbacks
):
    channel_set_surveyed(channel=channels["chat"], surveyed=False)
    conversation = _chat_conversation(channels["chat"], email="joe@example.com")
    survey = _solve(conversation, agent_a, capture=django_capture_on_commit_callbacks)
    assert (survey.status, survey.skip_reason) == ("skipped", "channel")
    assert Message.objects.filter(automated="survey").count() == 0


def test_a_new_chat_message_cancels_the_channel_survey(
    channels, agent_a, django_capture_on_commit_callbacks
):
    conversation = _chat_conversation(channels["chat"])
    survey = _solve(conversation, agent_a, capture=django_capture_on_commit_callbacks)
    with (
        time_machine.travel(SOLVED_AT + timedelta(minutes=5), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        send_chat(channels["chat"], body="Still broken")
    survey = _send_due(survey, django_capture_on_commit_callbacks)
    assert survey.status == "cancelled"
    assert Message.objects.filter(automated="survey").count() == 0


def test_the_throttle_holds_on_the_channel(channels, agent_a, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    first = _send_due(
        _solve(_chat_conversation(channels["chat"]), agent_a, capture=capture), capture
    )
    assert first.status == "sent"
    later = SOLVED_AT + timedelta(days=2)
    with time_machine.travel(later - timedelta(hours=1), tick=False):
        result = send_chat(channels["chat"], session_id="s-2", body="Another question")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    second = _send_due(_solve(conversation, agent_a, at=later, capture=capture), capture)
    assert (second.status, second.skip_reason) == ("skipped", "throttled")
    assert Message.objects.filter(automated="survey").count() == 1


def test_one_survey_per_solve_event_even_when_sending_runs_twice(
    channels, agent_a, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    survey = _send_due(
        _solve(_chat_conversation(channels["chat"]), agent_a, capture=capture), capture
    )
    with time_machine.travel(survey.due_at + timedelta(minutes=30), tick=False):
        assert surveys_send_due() == 0
    assert Message.objects.filter(automated="survey").count() == 1


def test_an_unsubscribed_customer_is_not_surveyed_on_the_channel_either(
    channels, agent_a, django_capture_on_commit_callbacks
):
    from surveys.models import SurveyUnsubscribe

    capture = django_capture_on_commit_callbacks
    conversation = _chat_conversation(channels["chat"])
    SurveyUnsubscribe.objects.create(customer=conversation.customer)
    survey = _send_due(_solve(conversation, agent_a, capture=capture), capture)
    assert (survey.status, survey.skip_reason) == ("skipped", "unsubscribed")
    assert Message.objects.filter(automated="survey").count() == 0


def test_email_customers_are_still_surveyed_by_email(
    channels, agent_a, mailoutbox, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        conversation_id = send_email(channels["email"], sender="ann@example.com").conversation_id
    survey = _send_due(
        _solve(Conversation.objects.get(pk=conversation_id), agent_a, capture=capture), capture
    )
    assert (survey.status, survey.via, survey.email) == ("sent", "email", "ann@example.com")
    assert len(survey_mails()) == 1
    assert Message.objects.filter(automated="survey").count() == 0


# --- Security on the new paths -----------------------------------------------------------------


@pytest.fixture
def chat_survey(channels, agent_a, django_capture_on_commit_callbacks):
    channel_set_widget(channel=channels["chat"], origins=["https://shop.example"])
    capture = django_capture_on_commit_callbacks
    return _send_due(
        _solve(_chat_conversation(channels["chat"]), agent_a, capture=capture), capture
    )


def test_the_inline_survey_may_be_framed_by_the_widget_origins_only(chat_survey):
    token = survey_token(chat_survey)
    client = Client()
    with time_machine.travel(chat_survey.sent_at + timedelta(minutes=1), tick=False):
        inline = client.get(f"/s/{token}/inline/")
        page = client.get(f"/s/{token}/")
    assert inline.status_code == 200
    assert "X-Frame-Options" not in inline
    assert "frame-ancestors 'self' https://shop.example" in inline["Content-Security-Policy"]
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert SurveyResponse.objects.count() == 0
    chat_survey.refresh_from_db()
    assert chat_survey.opened_at is None  # GET records nothing


def test_tampered_foreign_and_email_tokens_get_nothing_inline(
    chat_survey, channels, agent_a, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        conversation_id = send_email(channels["email"], sender="ann@example.com").conversation_id
    email_survey = _send_due(
        _solve(Conversation.objects.get(pk=conversation_id), agent_a, capture=capture), capture
    )
    token = survey_token(chat_survey)
    signed_id, _, signature = token.partition(":")
    survey_id, key = signed_id.split(".", 1)
    tampered = [
        f"{survey_id}.{key[:-1]}x:{signature}",
        f"{email_survey.pk}.{key}:{signature}",  # another survey's id with this key
        f"{survey_id}.{key}:{signature[:-2]}AA",
    ]
    client = Client()
    with time_machine.travel(chat_survey.sent_at + timedelta(minutes=1), tick=False):
        for bad in tampered:
            assert client.get(f"/s/{bad}/inline/").status_code == 404
            assert client.post(f"/s/{bad}/inline/", {"resolved": "yes"}).status_code == 404
        # An email survey's valid token has no inline page (it never went to a chat).
        foreign = client.post(f"/s/{survey_token(email_survey)}/inline/", {"resolved": "no"})
        assert foreign.status_code == 404
        # Expired: 410, nothing stored.
    with time_machine.travel(chat_survey.expires_at + timedelta(minutes=1), tick=False):
        assert client.post(f"/s/{token}/inline/", {"resolved": "no"}).status_code == 410
    assert SurveyResponse.objects.count() == 0


def test_a_replayed_inline_answer_updates_the_one_response(chat_survey):
    token = survey_token(chat_survey)
    client = Client()
    with time_machine.travel(chat_survey.sent_at + timedelta(minutes=1), tick=False):
        for _ in range(3):
            posted = client.post(f"/s/{token}/inline/", {"resolved": "yes", "csat": "4"})
            assert posted.status_code == 302
            assert posted["Location"] == f"/s/{token}/inline/?saved=1"
    response = SurveyResponse.objects.get()
    assert (response.survey_id, response.resolved, response.csat, response.times_answered) == (
        chat_survey.pk,
        "yes",
        4,
        3,
    )


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_inline_answers_leave_one_response(
    channels, agent_a, django_capture_on_commit_callbacks
):
    require_postgres()
    capture = django_capture_on_commit_callbacks
    survey = _send_due(
        _solve(_chat_conversation(channels["chat"]), agent_a, capture=capture), capture
    )
    url = f"/s/{survey_token(survey)}/inline/"
    start = threading.Barrier(20)
    codes: list[int] = []
    errors: list[BaseException] = []

    def submit(resolved: str) -> None:
        try:
            client = Client()
            start.wait(timeout=30)
            codes.append(client.post(url, {"resolved": resolved, "csat": "3"}).status_code)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    with time_machine.travel(survey.sent_at + timedelta(hours=1), tick=False):
        threads = [
            threading.Thread(target=submit, args=("no" if i % 2 else "yes",)) for i in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == []
    assert codes == [302] * 20
    response = SurveyResponse.objects.get()
    assert (response.survey_id, response.times_answered) == (survey.pk, 20)


# --- Channel settings --------------------------------------------------------------------------


def test_create_channel_sets_widget_origins_and_surveys(db, capsys):
    call_command(
        "create_channel",
        "chat",
        "Shop chat",
        "--team",
        "Shop",
        "--widget-origin",
        "https://shop.example",
        "--widget-origin",
        "http://127.0.0.1:8123/",
    )
    channel = Channel.objects.get(name="Shop chat")
    assert channel.widget_origins == ["https://shop.example", "http://127.0.0.1:8123"]
    assert len(channel.widget_key or "") == 24
    assert channel.surveyed is True
    out = capsys.readouterr().out
    assert f"/widget/{channel.widget_key}.js" in out
    key = channel.widget_key

    for bad in ("javascript:alert(1)", "https://shop.example/path", "https://a.example 'none'"):
        with pytest.raises(CommandError):
            call_command("create_channel", "chat", "Shop chat", "--widget-origin", bad)
    channel.refresh_from_db()
    assert channel.widget_origins == ["https://shop.example", "http://127.0.0.1:8123"]
    assert channel.widget_key == key

    call_command("create_channel", "chat", "Shop chat", "--no-surveys")
    channel.refresh_from_db()
    assert (channel.surveyed, channel.widget_key) == (False, key)
    with pytest.raises(CommandError):
        call_command("create_channel", "email", "Inbox", "--widget-origin", "https://a.example")
    assert not Channel.objects.filter(name="Inbox").exists()


def test_the_widget_script_and_the_framed_chat_of_one_channel(channels, team_b):
    chat = channel_set_widget(channel=channels["chat"], origins=["https://shop.example"])
    client = Client()
    script = client.get(f"/widget/{chat.widget_key}.js")
    assert script.status_code == 200
    assert script["Content-Type"] == "text/javascript; charset=utf-8"
    assert f'"{settings.SITE_URL}/widget/{chat.widget_key}/"' in script.content.decode()
    page = client.get(f"/widget/{chat.widget_key}/")
    assert page.status_code == 200
    assert "X-Frame-Options" not in page
    assert "frame-ancestors 'self' https://shop.example;" in page["Content-Security-Policy"] + ";"
    # Every other page keeps DENY, the built-in chat page included.
    plain = client.get("/chat/")
    assert plain["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in plain["Content-Security-Policy"]
    assert client.get("/widget/nope.js").status_code == 404
    assert client.get("/widget/nope/").status_code == 404
    # A channel's widget stops with the channel.
    Channel.objects.filter(pk=chat.pk).update(is_active=False)
    assert client.get(f"/widget/{chat.widget_key}.js").status_code == 404


def test_each_widget_feeds_its_own_channel_and_team(channels, channels_b):
    a = channel_set_widget(channel=channels["chat"], origins=["https://a.example"])
    b = channel_set_widget(channel=channels_b["chat"], origins=["https://b.example"])
    client = Client()
    for channel, text in ((a, "Hello A"), (b, "Hello B")):
        client.post(f"/widget/{channel.widget_key}/", {"start": "1", "name": "", "email": ""})
        posted = client.post(f"/widget/{channel.widget_key}/", {"body": text})
        assert posted.status_code == 302
    messages = {
        m.body_text: (m.channel_id, m.conversation.team.name)
        for m in Message.objects.select_related("conversation__team")
    }
    assert messages == {"Hello A": (a.pk, "Team A"), "Hello B": (b.pk, "Team B")}


def test_survey_settings_channel_kinds_still_apply(
    channels, agent_a, django_capture_on_commit_callbacks
):
    survey_settings_update(channels=["email"])
    survey = _solve(
        _chat_conversation(channels["chat"]), agent_a, capture=django_capture_on_commit_callbacks
    )
    assert (survey.status, survey.skip_reason) == ("skipped", "channel")


def test_admins_set_a_widget_s_sites_and_a_channel_s_survey_switch_on_the_settings_page(
    channels, admin_user, agent_a
):
    from tests.helpers import web

    chat = channels["chat"]
    url = f"/settings/channels/{chat.pk}/"
    assert web(agent_a).get("/settings/channels/").status_code == 403
    assert web(agent_a).post(url, {"origins": "https://evil.example"}).status_code == 403
    chat.refresh_from_db()
    assert (chat.widget_key, chat.widget_origins, chat.surveyed) == (None, [], True)

    admin = web(admin_user)
    refused = admin.post(url, {"origins": "https://shop.example/path", "surveyed": "on"})
    assert refused.status_code == 400
    assert "is not a site origin" in refused.content.decode()
    chat.refresh_from_db()
    assert (chat.widget_key, chat.widget_origins) == (None, [])

    saved = admin.post(url, {"origins": "https://shop.example\r\nhttps://m.shop.example:8443"})
    assert saved.status_code == 302
    chat.refresh_from_db()
    assert chat.widget_origins == ["https://shop.example", "https://m.shop.example:8443"]
    assert chat.surveyed is False  # the box was left unticked
    page = admin.get("/settings/channels/").content.decode()
    snippet = f"{settings.SITE_URL}/widget/{chat.widget_key}.js"
    assert f"&lt;script src=&quot;{snippet}&quot; async&gt;&lt;/script&gt;" in page

    social = channels["social"]
    assert admin.post(f"/settings/channels/{social.pk}/", {}).status_code == 302
    social.refresh_from_db()
    assert (social.surveyed, social.widget_key) == (False, None)


def test_a_chat_customer_unsubscribes_from_the_inline_survey_and_gets_no_more(
    chat_survey, channels, agent_a, django_capture_on_commit_callbacks
):
    from surveys.models import SurveyUnsubscribe

    token = survey_token(chat_survey)
    client = Client()
    with time_machine.travel(chat_survey.sent_at + timedelta(minutes=1), tick=False):
        assert client.get(f"/s/{token}/unsubscribe/").status_code == 200
        assert SurveyUnsubscribe.objects.count() == 0  # GET records nothing
        assert client.post(f"/s/{token}/unsubscribe/").status_code == 200
        assert client.post(f"/s/{token}/unsubscribe/").status_code == 200  # idempotent
    row = SurveyUnsubscribe.objects.get()
    assert (row.email, row.customer_id) == ("", chat_survey.customer_id)

    later = SOLVED_AT + timedelta(days=30)
    with time_machine.travel(later - timedelta(hours=1), tick=False):
        send_chat(channels["chat"], session_id="s-later", body="New question")
    capture = django_capture_on_commit_callbacks
    second = _send_due(
        _solve(
            Conversation.objects.exclude(pk=chat_survey.conversation_id).get(),
            agent_a,
            at=later,
            capture=capture,
        ),
        capture,
    )
    assert (second.status, second.skip_reason) == ("skipped", "unsubscribed")
    assert Message.objects.filter(automated="survey").count() == 1
