"""The bell, the notifications page, opening one, settings, the mention lookup, the API."""

from __future__ import annotations

import pytest

from notifications.models import NotificationPreference
from supportdesk.models import Notification
from supportdesk.services import notification_create
from tests.conftest import client_for
from tests.factories import send_email
from tests.helpers import web
from tickets.models import Conversation

pytestmark = pytest.mark.django_db


def notify(user, n, *, kind="conversation.customer_wrote", url="/conversations/1/"):
    return [
        notification_create(
            recipient=user, kind=kind, title=f"Title {i}", body=f"Body {i}", url=url
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("count", [0, 3, 40])
def test_the_bell_runs_one_query_whatever_the_number_of_notifications(
    agent_a, count, django_assert_num_queries
):
    notify(agent_a, count)
    client = web(agent_a)
    # session, user, the unread notifications with their total (COUNT(*) OVER ()) in one query
    with django_assert_num_queries(3):
        response = client.get("/notifications/badge/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    items = response.context["bell"].items
    assert response.context["bell"].unread == count
    assert [item.title for item in items] == [f"Title {i}" for i in reversed(range(count))][:5]
    if count:
        assert f'<span class="bell-count" aria-label="{count} unread">{count}</span>' in html
        assert html.count('class="bell-item"') == 5 if count > 5 else count
    else:
        assert "bell-count" not in html
    assert 'hx-trigger="every 20s"' in html


def test_the_bell_counts_only_the_callers_unread_and_shows_99_plus(agent_a, manager_a):
    notify(agent_a, 101)
    notify(manager_a, 2)
    Notification.objects.filter(recipient=agent_a).order_by("id")[:1].get().delete()
    html = web(agent_a).get("/notifications/badge/").content.decode()
    assert '<span class="bell-count" aria-label="100 unread">99+</span>' in html
    page = web(manager_a).get("/").content.decode()
    assert '<span class="bell-count" aria-label="2 unread">2</span>' in page
    assert (
        'data-latest-id="' + str(Notification.objects.filter(recipient=manager_a).latest("id").pk)
        in page
    )


def test_the_list_marks_read_one_or_all_and_filters_unread(agent_a, manager_a):
    first, second, third = notify(agent_a, 3)
    others = notify(manager_a, 1)
    client = web(agent_a)

    page = client.get("/notifications/")
    assert [n.title for n in page.context["notifications"]] == ["Title 2", "Title 1", "Title 0"]
    assert f'href="/notifications/{third.pk}/open/"' in page.content.decode()

    assert client.post("/notifications/", {"id": [second.pk, others[0].pk]}).status_code == 302
    assert list(
        Notification.objects.filter(read_at__isnull=False).values_list("pk", flat=True)
    ) == [second.pk]  # another person's id changes nothing
    unread = client.get("/notifications/?unread=1")
    assert [n.pk for n in unread.context["notifications"]] == [third.pk, first.pk]

    assert client.post("/notifications/", {"id": "x"}).status_code == 400
    assert client.post("/notifications/", {"id": "99999999999999999999"}).status_code == 400
    assert Notification.objects.filter(read_at__isnull=False).count() == 1

    response = client.post("/notifications/", {"next": "unread"})
    assert response.status_code == 302
    assert response["Location"] == "/notifications/?unread=1"
    assert Notification.objects.filter(recipient=agent_a, read_at__isnull=True).count() == 0
    assert Notification.objects.filter(recipient=manager_a, read_at__isnull=True).count() == 1


def test_opening_a_notification_marks_it_read_and_goes_to_the_conversation(agent_a, manager_a):
    (mine,) = notify(agent_a, 1, url="/conversations/7/#message-9")
    (theirs,) = notify(manager_a, 1)
    client = web(agent_a)

    response = client.get(f"/notifications/{mine.pk}/open/")
    assert response.status_code == 302
    assert response["Location"] == "/conversations/7/#message-9"
    mine.refresh_from_db()
    assert mine.read_at is not None

    assert client.get(f"/notifications/{theirs.pk}/open/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_the_list_page_runs_a_constant_number_of_queries(agent_a, django_assert_num_queries):
    client = web(agent_a)
    for n in (2, 30):
        notify(agent_a, n)
        # session, user, count for the paginator, the page (with the conversation links),
        # the bell summary (top bar; the "mark all" button reuses it)
        with django_assert_num_queries(5):
            client.get("/notifications/")


def test_settings_page_saves_the_email_choice(agent_a):
    client = web(agent_a)
    page = client.get("/notifications/settings/")
    assert page.status_code == 200
    assert page.context["form"]["email"].value() == "immediate"
    assert not NotificationPreference.objects.exists()

    assert client.post("/notifications/settings/", {"email": "weekly"}).status_code == 400
    assert not NotificationPreference.objects.exists()

    response = client.post("/notifications/settings/", {"email": "daily"})
    assert response.status_code == 302
    preference = NotificationPreference.objects.get()
    assert (preference.user, preference.email) == (agent_a, "daily")
    assert preference.last_digest_at is not None


def test_mention_lookup_lists_who_can_open_the_conversation(
    channels, agent_a, agent_b, manager_a, admin_user, django_assert_num_queries
):
    from tests.factories import make_staff

    make_staff("carl@desk.example", teams=["Team A"], full_name="Carl Cooper")
    gone = make_staff("cara@desk.example", teams=["Team A"], full_name="Cara Gone")
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    result = send_email(channels["email"], sender="jane@example.com")
    url = f"/conversations/{result.conversation_id}/mentions/"
    client = web(agent_a)

    # session, user, conversation (visibility by the caller's teams in a subquery), the candidates
    with django_assert_num_queries(4):
        everyone = client.get(url).json()["results"]
    assert [(p["name"], p["email"], p["handle"]) for p in everyone] == [
        ("Ada Admin", "root@desk.example", "Ada Admin"),
        ("Carl Cooper", "carl@desk.example", "Carl Cooper"),
        ("Mia Manager", "mia@desk.example", "Mia Manager"),
    ]
    assert [p["name"] for p in client.get(url, {"q": "ca"}).json()["results"]] == ["Carl Cooper"]
    assert [p["name"] for p in client.get(url, {"q": "mia@"}).json()["results"]] == ["Mia Manager"]
    assert client.get(url, {"q": "bob"}).json() == {"results": []}
    # Bob is in Team B: the conversation does not exist for him.
    assert web(agent_b).get(url).status_code == 404


def test_a_conversation_page_offers_the_mention_lookup(channels, agent_a):
    result = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    html = web(agent_a).get(f"/conversations/{conversation.pk}/").content.decode()
    assert f'data-mention-url="/conversations/{conversation.pk}/mentions/"' in html
    assert "js/mentions.js" in html


# --- API ------------------------------------------------------------------------------------------


def test_api_lists_the_callers_notifications_newest_first(
    channels, agent_a, manager_a, django_assert_num_queries
):
    from tickets.services import conversation_assign

    result = send_email(channels["email"], sender="jane@example.com", subject="Parcel late")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    (qa,) = notify(agent_a, 1, kind="qa.reviewed", url="/qa/")
    notify(manager_a, 2)
    api = client_for(agent_a)

    # token, the page (with the conversation links)
    with django_assert_num_queries(2):
        response = api.get("/api/v1/notifications/")
    assert response.status_code == 200
    body = response.json()
    assigned = Notification.objects.get(kind="conversation.assigned")
    c = conversation.pk
    assert body["next"] is None
    assert [
        {
            k: item[k]
            for k in (
                "id",
                "kind",
                "reason",
                "title",
                "body",
                "url",
                "conversation",
                "read",
                "read_at",
            )
        }
        for item in body["results"]
    ] == [
        {
            "id": qa.pk,
            "kind": "qa.reviewed",
            "reason": None,
            "title": "Title 0",
            "body": "Body 0",
            "url": "/qa/",
            "conversation": None,
            "read": False,
            "read_at": None,
        },
        {
            "id": assigned.pk,
            "kind": "conversation.assigned",
            "reason": "assigned",
            "title": f"Mia Manager assigned #{c} to you: Parcel late",
            "body": f"Customer #{conversation.customer_id}",
            "url": f"/conversations/{c}/",
            "conversation": c,
            "read": False,
            "read_at": None,
        },
    ]


def test_api_pages_with_a_cursor_and_filters_unread(agent_a):
    notes = notify(agent_a, 5)
    api = client_for(agent_a)
    first = api.get("/api/v1/notifications/", {"page_size": 2}).json()
    assert [item["id"] for item in first["results"]] == [notes[4].pk, notes[3].pk]
    second = api.get(first["next"]).json()
    assert [item["id"] for item in second["results"]] == [notes[2].pk, notes[1].pk]

    assert api.post(
        "/api/v1/notifications/read/", {"ids": [notes[4].pk]}, format="json"
    ).json() == {
        "marked": 1,
        "unread": 4,
    }
    unread = api.get("/api/v1/notifications/", {"unread": "true"}).json()["results"]
    assert [item["id"] for item in unread] == [n.pk for n in reversed(notes[:4])]
    assert api.get("/api/v1/notifications/", {"unread": "maybe"}).status_code == 400


def test_api_mark_read_refuses_bad_input_and_touches_only_the_callers(agent_a, manager_a):
    mine = notify(agent_a, 2)
    theirs = notify(manager_a, 1)
    api = client_for(agent_a)

    for bad in ({}, {"ids": []}, {"ids": ["x"]}, {"ids": [1], "all": True}, {"ids": [2**63]}):
        response = api.post("/api/v1/notifications/read/", bad, format="json")
        assert response.status_code == 400, bad
        assert "detail" in response.json()
    assert Notification.objects.filter(read_at__isnull=False).count() == 0

    response = api.post("/api/v1/notifications/read/", {"ids": [theirs[0].pk]}, format="json")
    assert response.json() == {"marked": 0, "unread": 2}
    assert api.post("/api/v1/notifications/read/", {"all": True}, format="json").json() == {
        "marked": 2,
        "unread": 0,
    }
    assert (
        Notification.objects.filter(pk__in=[n.pk for n in mine], read_at__isnull=True).count() == 0
    )
    assert Notification.objects.filter(recipient=manager_a, read_at__isnull=True).count() == 1
    assert client_for(manager_a).get("/api/v1/notifications/").json()["results"][0]["read"] is False
