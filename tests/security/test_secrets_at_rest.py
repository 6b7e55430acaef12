"""Channel secrets and API tokens are held as a digest and a sealed copy, never in clear.

Finding 11 of the white-box review: both were plain-text columns, and the channel was looked up
with an ordinary equality filter on the secret.
"""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from supportdesk.models import ApiToken
from supportdesk.sealing import UnsealError, seal, secret_digest, unseal
from supportdesk.services import staff_create_or_update
from tickets.models import Channel, Conversation
from tickets.selectors import channel_get_by_secret

pytestmark = pytest.mark.django_db

CHAT = "/api/v1/inbound/chat/"


def _dump(*tables: str) -> str:
    """Every value of these tables as text, as a database dump would hold them."""
    text = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")
            text.extend(str(value) for row in cursor.fetchall() for value in row)
    return "\n".join(text)


def _chat(secret: str, external_id: str = "c-1"):
    return APIClient().post(
        CHAT,
        {"external_id": external_id, "session_id": "s-1", "visitor_id": "v-1", "body": "Hello"},
        format="json",
        headers={"X-Channel-Token": secret},
    )


def test_the_database_holds_no_channel_secret_or_api_token_in_clear(channels):
    _user, token = staff_create_or_update(email="sam@desk.example", role="agent")
    key = token.key
    secrets_ = [channel.secret for channel in channels.values()]

    dump = _dump("tickets_channel", "supportdesk_apitoken", "authtoken_token")

    assert len(key) == 40
    assert key not in dump
    for secret in secrets_:
        assert len(secret) == 43
        assert secret not in dump
        assert hashlib.sha256(secret.encode()).hexdigest() in dump
    assert _dump("authtoken_token") == ""


def test_a_channel_is_found_by_its_secret_and_not_by_its_digest(channels):
    chat = channels["chat"]

    assert channel_get_by_secret(secret=chat.secret) == chat
    assert channel_get_by_secret(secret=chat.secret_digest) is None
    assert channel_get_by_secret(secret=chat.secret[:-1]) is None

    refused = _chat(chat.secret_digest)
    assert refused.status_code == 401
    assert Conversation.objects.count() == 0
    accepted = _chat(chat.secret)
    assert accepted.status_code == 201, accepted.content
    assert Conversation.objects.count() == 1


def test_an_api_token_authenticates_and_its_digest_does_not(agent_a):
    token = ApiToken.objects.get(user=agent_a)

    ok = APIClient(headers={"Authorization": f"Token {token.key}"}).get("/api/v1/conversations/")
    digest = APIClient(headers={"Authorization": f"Token {token.digest}"}).get(
        "/api/v1/conversations/"
    )
    sealed = APIClient(headers={"Authorization": f"Token {token.sealed}"}).get(
        "/api/v1/conversations/"
    )

    assert ok.status_code == 200
    assert (digest.status_code, digest.json()["detail"]) == (401, "Invalid token.")
    assert sealed.status_code == 401


def test_an_inactive_staff_members_token_is_refused(agent_a):
    token = ApiToken.objects.get(user=agent_a)
    agent_a.is_active = False
    agent_a.save(update_fields=["is_active"])

    response = APIClient(headers={"Authorization": f"Token {token.key}"}).get(
        "/api/v1/conversations/"
    )

    assert response.status_code == 401


def test_create_staff_prints_the_same_token_on_every_run_from_the_sealed_copy(team_a):
    first, second = StringIO(), StringIO()
    call_command("create_staff", "sam@desk.example", "--role", "agent", stdout=first)
    call_command("create_staff", "sam@desk.example", "--role", "agent", stdout=second)

    key = first.getvalue().splitlines()[-1]
    assert second.getvalue().splitlines()[-1] == key
    assert ApiToken.objects.get().digest == secret_digest(key)


def test_a_rotated_secret_key_still_opens_sealed_secrets_while_it_is_a_fallback(settings, channels):
    chat = Channel.objects.get(pk=channels["chat"].pk)
    secret = chat.secret
    old_key = settings.SECRET_KEY

    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 50
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert Channel.objects.get(pk=chat.pk).secret == secret

    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(UnsealError):
        Channel.objects.get(pk=chat.pk).secret  # noqa: B018
    # Finding the channel needs only the digest: inbound keeps working through a key change.
    assert channel_get_by_secret(secret=secret) == chat


def test_sealing_round_trips_and_differs_each_time():
    first, second = seal("s3cret"), seal("s3cret")

    assert first != second
    assert unseal(first) == unseal(second) == "s3cret"
    with pytest.raises(UnsealError):
        unseal(first[:-4] + "AAAA")
