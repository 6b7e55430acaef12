"""The public survey page: what records, what does not, tokens, expiry and what an answer does."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail, signing
from django.test import Client

from supportdesk.models import Notification, OutboxItem
from surveys.models import FollowUp, Survey, SurveyResponse, SurveyUnsubscribe
from surveys.services import TOKEN_SALT, survey_token
from tickets.models import Conversation, Event

pytestmark = pytest.mark.django_db


def _url(survey: Survey, suffix: str = "") -> str:
    return f"/s/{survey_token(survey)}/{suffix}"


def _snapshot() -> tuple:
    return (
        SurveyResponse.objects.count(),
        Notification.objects.count(),
        OutboxItem.objects.count(),
        Event.objects.count(),
        FollowUp.objects.count(),
        SurveyUnsubscribe.objects.count(),
        list(Survey.objects.values_list("opened_at", "status")),
        list(Conversation.objects.values_list("status", flat=True)),
    )


@pytest.fixture
def answered_at(sent):
    """A sent survey and a moment inside its window at which to answer it."""
    survey = sent()
    return survey, survey.sent_at + timedelta(hours=2)


def _post(survey, at, data, client=None):
    client = client or Client()
    with time_machine.travel(at, tick=False):
        return client.post(_url(survey), data)


def test_get_and_head_record_nothing(answered_at):
    survey, at = answered_at
    before = _snapshot()
    client = Client()

    with time_machine.travel(at, tick=False):
        page = client.get(_url(survey))
        with_answer = client.get(_url(survey) + "?resolved=no")
        head = client.head(_url(survey) + "?resolved=yes")

    assert page.status_code == 200
    assert with_answer.status_code == 200
    assert head.status_code == 200
    assert _snapshot() == before
    html = with_answer.content.decode()
    assert 'name="resolved" value="no" checked' in html
    assert 'name="resolved" value="yes" checked' not in html
    # Pre-filled with our own count (1 contact), which the customer can change.
    assert 'name="contacts" value="1" checked' in html
    assert 'name="nps"' in html  # the first survey of this customer asks the NPS question
    assert "Give Alice a shout-out" in html


def test_a_post_records_and_a_second_post_replaces_it(
    answered_at, django_capture_on_commit_callbacks
):
    survey, at = answered_at

    with django_capture_on_commit_callbacks(execute=True):
        first = _post(
            survey,
            at,
            {"resolved": "yes", "contacts": "2", "csat": "4", "nps": "9", "comment": "Thanks"},
        )
        second = _post(
            survey, at + timedelta(minutes=5), {"resolved": "yes", "csat": "5", "shout_out": "on"}
        )

    assert first.status_code == 302
    assert second.status_code == 302
    response = SurveyResponse.objects.get()
    assert response.survey == survey
    assert (response.resolved, response.contacts_declared, response.csat, response.nps) == (
        "yes",
        None,
        5,
        None,
    )
    assert response.comment == ""
    assert response.shout_out is True
    assert response.contacts_counted == 1
    assert response.times_answered == 2
    assert response.first_answered_at == at
    assert response.answered_at == at + timedelta(minutes=5)
    # The thank-you page, with the answer editable.
    with time_machine.travel(at + timedelta(minutes=6), tick=False):
        thanks = Client().get(second["Location"])
    assert "your answer is saved" in thanks.content.decode()
    assert "Update my answer" in thanks.content.decode()


def test_answer_no_reopens_and_notifies_the_agent_in_app_and_by_email(
    answered_at, agent_a, mailoutbox, django_capture_on_commit_callbacks
):
    survey, at = answered_at
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        _post(survey, at, {"resolved": "no", "comment": "Still not here."})

    conversation = Conversation.objects.get(pk=survey.conversation_id)
    assert conversation.status == "open"
    reopen = Event.objects.get(kind="conversation.reopened", conversation=conversation)
    assert reopen.data["by"] == "system"
    assert "resolved = no" in reopen.data["reason"]
    notification = Notification.objects.get(recipient=agent_a, kind="survey.not_resolved")
    assert notification.url == f"/conversations/{conversation.pk}/"
    assert "Still not here." in notification.body
    assert [m.to for m in mail.outbox] == [[agent_a.email]]
    # Answering "no" again does not reopen or notify twice.
    with django_capture_on_commit_callbacks(execute=True):
        _post(survey, at + timedelta(minutes=1), {"resolved": "no"})
    assert Event.objects.filter(kind="conversation.reopened").count() == 1
    assert Notification.objects.filter(kind="survey.not_resolved").count() == 1


@pytest.mark.parametrize(
    ("nothing_more", "reopened"), [("", True), ("on", False)], ids=["needs-more", "nothing-more"]
)
def test_partly_reopens_unless_the_customer_needs_nothing_more(
    answered_at, agent_a, nothing_more, reopened
):
    survey, at = answered_at
    _post(survey, at, {"resolved": "partly", "needs_nothing_more": nothing_more})

    status = Conversation.objects.get(pk=survey.conversation_id).status
    assert status == ("open" if reopened else "closed")
    assert Notification.objects.filter(kind="survey.not_resolved").count() == int(reopened)
    assert SurveyResponse.objects.get().needs_nothing_more is (not reopened)


def test_yes_closes_the_conversation_the_customer_confirmed(answered_at):
    survey, at = answered_at
    _post(survey, at, {"resolved": "yes", "csat": "5"})
    conversation = Conversation.objects.get(pk=survey.conversation_id)
    assert (conversation.status, conversation.closed_at) == ("closed", at)
    closed = Event.objects.get(kind="conversation.closed")
    assert closed.data["reason"] == "Survey: the customer answered resolved = yes."
    assert Notification.objects.count() == 0
    # Changing the answer to "no" reopens it after all.
    _post(survey, at + timedelta(minutes=1), {"resolved": "no"})
    assert Conversation.objects.get(pk=survey.conversation_id).status == "open"


def test_yes_about_an_older_solve_does_not_close_a_later_one(answered_at, agent_a):
    from tickets.services import conversation_reopen, conversation_solve

    survey, at = answered_at
    conversation = Conversation.objects.get(pk=survey.conversation_id)
    conversation_reopen(conversation=conversation, actor=agent_a, at=at - timedelta(minutes=30))
    conversation_solve(conversation=conversation, actor=agent_a, at=at - timedelta(minutes=10))
    _post(survey, at, {"resolved": "yes"})
    assert Conversation.objects.get(pk=survey.conversation_id).status == "solved"


@pytest.mark.parametrize(
    ("data", "reason"),
    [({"csat": "2"}, "low_csat"), ({"csat": "1"}, "low_csat"), ({"nps": "6"}, "detractor")],
)
def test_low_scores_open_a_follow_up_for_the_teams_manager(answered_at, manager_a, data, reason):
    survey, at = answered_at
    _post(survey, at, {"resolved": "yes", **data})

    follow_up = FollowUp.objects.get()
    assert (follow_up.survey, follow_up.assignee, follow_up.reason) == (survey, manager_a, reason)
    assert follow_up.team == survey.team
    assert Notification.objects.get(recipient=manager_a).kind == "survey.follow_up"
    _post(survey, at + timedelta(minutes=1), {"resolved": "yes", **data})
    assert FollowUp.objects.count() == 1


@pytest.mark.parametrize("data", [{"csat": "3"}, {"nps": "7"}, {"csat": "5", "nps": "10"}])
def test_other_scores_open_no_follow_up(answered_at, manager_a, data):
    survey, at = answered_at
    _post(survey, at, {"resolved": "yes", **data})
    assert FollowUp.objects.count() == 0


def test_a_shout_out_reaches_the_agent(answered_at, agent_a):
    survey, at = answered_at
    _post(survey, at, {"resolved": "yes", "csat": "5", "shout_out": "on", "comment": "Great"})

    notification = Notification.objects.get(recipient=agent_a)
    assert notification.kind == "survey.shout_out"
    assert notification.body == "Great"


def test_each_answer_queues_the_survey_answered_subscribers_with_the_solve_event(
    answered_at, monkeypatch
):
    from supportdesk import events

    survey, at = answered_at
    monkeypatch.setitem(events._subscribers, "survey.answered", ["metrics.tasks.mark_dirty"])
    _post(survey, at, {"resolved": "yes"})
    _post(survey, at, {"resolved": "no"})

    items = OutboxItem.objects.filter(task_name="metrics.tasks.mark_dirty")
    assert [item.kwargs for item in items] == [{"event_id": survey.event_id}] * 2


@pytest.mark.parametrize(
    "data",
    [
        {"resolved": "maybe"},
        {"resolved": "yes", "csat": "6"},
        {"resolved": "yes", "csat": "0"},
        {"resolved": "yes", "nps": "11"},
        {"resolved": "yes", "contacts": "0"},
        {"resolved": "yes", "contacts": "6"},
        {"resolved": "yes", "csat": "five"},
        {"resolved": "yes", "comment": "x" * 5001},
        {},
    ],
)
def test_bad_input_is_a_400_and_stores_nothing(answered_at, data):
    survey, at = answered_at
    before = _snapshot()
    page = _post(survey, at, data)

    assert page.status_code == 400
    assert "Please" in page.content.decode()
    assert _snapshot() == before


def test_nps_is_ignored_on_a_survey_that_did_not_ask_it(answered_at):
    survey, at = answered_at
    Survey.objects.filter(pk=survey.pk).update(asks_nps=False)
    _post(survey, at, {"resolved": "yes", "nps": "3"})
    assert SurveyResponse.objects.get().nps is None
    assert FollowUp.objects.count() == 0


def test_a_token_cannot_be_used_for_another_survey(sent):
    first = sent()
    second = sent(at=first.sent_at + timedelta(days=30), subject="Another one")
    signer = signing.Signer(salt=TOKEN_SALT)
    forged = [
        # first's key with second's id, correctly signed: the key does not match
        signer.sign(f"{second.pk}.{first.token_key}"),
        # first's signed token with the id changed: the signature does not match
        survey_token(first).replace(f"{first.pk}.", f"{second.pk}.", 1),
        # a token signed for another purpose
        signing.Signer(salt="something-else").sign(f"{second.pk}.{second.token_key}"),
        "garbage",
    ]
    client = Client()
    with time_machine.travel(second.sent_at + timedelta(hours=1), tick=False):
        for token in forged:
            assert client.get(f"/s/{token}/").status_code == 404
            assert client.post(f"/s/{token}/", {"resolved": "no"}).status_code == 404
        assert client.get(_url(second)).status_code == 200
    assert SurveyResponse.objects.count() == 0


def test_an_expired_link_gets_a_friendly_410_and_records_nothing(answered_at):
    survey, _ = answered_at
    client = Client()
    with time_machine.travel(survey.expires_at - timedelta(seconds=1), tick=False):
        assert client.get(_url(survey)).status_code == 200
    before = _snapshot()
    with time_machine.travel(survey.expires_at, tick=False):
        page = client.get(_url(survey))
        posted = client.post(_url(survey), {"resolved": "no"})
    assert page.status_code == 410
    assert posted.status_code == 410
    assert "This survey has closed" in page.content.decode()
    assert _snapshot() == before


def test_a_survey_that_was_not_sent_cannot_be_opened(solve):
    survey = solve()
    assert Client().get(_url(survey)).status_code == 404


def test_unsubscribe_get_asks_post_records(answered_at):
    survey, at = answered_at
    client = Client(enforce_csrf_checks=True)
    with time_machine.travel(at, tick=False):
        page = client.get(_url(survey, "unsubscribe/"))
        assert SurveyUnsubscribe.objects.count() == 0
        # RFC 8058 one-click: the mail provider POSTs without a CSRF token.
        done = client.post(_url(survey, "unsubscribe/"), {"List-Unsubscribe": "One-Click"})
        again = client.post(_url(survey, "unsubscribe/"))
    assert page.status_code == 200
    assert "Stop survey emails?" in page.content.decode()
    assert done.status_code == 200
    assert again.status_code == 200
    unsubscribe = SurveyUnsubscribe.objects.get()
    assert (unsubscribe.email, unsubscribe.customer_id) == ("jane@example.com", survey.customer_id)


def test_the_page_script_marks_the_survey_opened(answered_at):
    survey, at = answered_at
    client = Client()
    with time_machine.travel(at, tick=False):
        client.get(_url(survey))
        assert client.post(_url(survey, "opened/")).status_code == 204
        client.post(_url(survey, "opened/"))
    survey.refresh_from_db()
    assert survey.opened_at == at
    assert SurveyResponse.objects.count() == 0


def test_public_endpoints_are_rate_limited(answered_at, settings):
    from django.core.cache import cache

    cache.clear()
    settings.SURVEY_RATE_LIMIT = "3/m"
    survey, at = answered_at
    client = Client()
    with time_machine.travel(at, tick=False):
        codes = [client.get(_url(survey)).status_code for _ in range(4)]
        posts = [client.post(_url(survey), {"resolved": "yes"}).status_code for _ in range(4)]
    cache.clear()
    assert codes == [200, 200, 200, 429]
    assert posts == [302, 302, 302, 429]
    assert SurveyResponse.objects.get().times_answered == 3
