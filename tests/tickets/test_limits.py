"""Limits on input: request and attachment sizes, hostile MIME structure, page sizes.

Over a limit the answer is a clear 413/400 and nothing is stored (counts are compared); huge or
absurdly nested email is parsed within bounded memory (measured in a subprocess) and stored.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.factories import email_bytes, send_email
from tests.helpers import post_email
from tests.tickets.test_api import counts, email_with_attachment
from tickets.emails import MAX_BODY_CHARS, MAX_MIME_PARTS, parse_raw_email
from tickets.models import Attachment, Message, QuarantinedMessage

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


# --- Hostile shapes ---------------------------------------------------------------------------------


def nested_multipart(depth: int) -> bytes:
    out = [
        b"From: Jane <jane@example.com>\r\nTo: support@desk.example\r\nSubject: Deep\r\n"
        b"Message-ID: <deep@mail.example.com>\r\nMIME-Version: 1.0\r\n"
    ]
    out.extend(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    out.append(b"Content-Type: text/plain\r\n\r\nhello from the bottom\r\n")
    out.extend(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return b"".join(out)


def many_parts(count: int) -> bytes:
    head = (
        b"From: Jane <jane@example.com>\r\nTo: support@desk.example\r\nSubject: Many\r\n"
        b'Message-ID: <many@mail.example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello, many files\r\n"
    )
    part = (
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="f.bin"\r\n\r\nxx\r\n'
    )
    return head + part * count + b"--B--\r\n"


def long_line(size: int) -> bytes:
    return email_bytes(message_id="<long@mail.example.com>", body="x" * size)


def giant_headers(count: int, size: int) -> bytes:
    extra = {f"X-Junk-{i}": "y" * size for i in range(count)}
    return email_bytes(message_id="<headers@mail.example.com>", extra_headers=extra)


MEMORY_PROBE = """
import os, sys, tracemalloc
sys.path.insert(0, {root!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
import django
django.setup()
from tests.tickets.test_limits import {maker}
from tickets.emails import parse_raw_email
raw = {maker}({arg})
tracemalloc.start()
parsed = parse_raw_email(raw)
print(tracemalloc.get_traced_memory()[1], len(raw), len(parsed.text), len(parsed.attachments))
"""


@pytest.mark.parametrize(
    ("maker", "arg", "max_peak_mb"),
    [
        ("nested_multipart", 1000, 20),
        ("many_parts", 10_000, 40),
        ("long_line", 20 * 1024 * 1024, 256),
        ("giant_headers", "1000, 20_000", 256),
    ],
)
def test_hostile_email_parses_in_bounded_memory(maker, arg, max_peak_mb):
    code = MEMORY_PROBE.format(root=str(ROOT), maker=maker, arg=arg)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    peak, size, text_length, attachments = map(int, result.stdout.split())
    assert peak < max_peak_mb * 1024 * 1024, (peak, size)
    assert text_length <= MAX_BODY_CHARS + 200
    assert attachments <= MAX_MIME_PARTS


def test_deep_nesting_keeps_headers_and_body_text():
    parsed = parse_raw_email(nested_multipart(1000))

    assert (parsed.from_email, parsed.subject) == ("jane@example.com", "Deep")
    assert "hello from the bottom" in parsed.text
    assert parsed.attachments == ()


def test_ten_thousand_parts_become_text_not_ten_thousand_files():
    parsed = parse_raw_email(many_parts(10_000))

    assert parsed.subject == "Many"
    assert parsed.attachments == ()
    assert parsed.text.startswith("--B\nContent-Type: text/plain\n\nhello, many files")


def test_a_few_hundred_parts_are_still_parsed_normally():
    parsed = parse_raw_email(many_parts(300))

    assert parsed.text == "hello, many files"
    assert len(parsed.attachments) == 300


def test_a_20_mb_line_is_stored_cut_with_a_note(api, channels):
    response = post_email(channels["email"], long_line(20 * 1024 * 1024))

    assert response.status_code == 201, response.content[:500]
    message = Message.objects.get()
    assert message.body_text.startswith("x" * 1000)
    assert message.body_text.endswith(
        f"[Cut at {MAX_BODY_CHARS} characters of {20 * 1024 * 1024}; the original is kept.]"
    )
    assert len(bytes(message.raw)) > 20 * 1024 * 1024  # the original, whole


@pytest.mark.parametrize(
    "raw",
    [nested_multipart(1000), many_parts(10_000), giant_headers(1000, 20_000)],
    ids=["nested-1000", "parts-10000", "headers-20MB"],
)
def test_hostile_structure_through_the_api_is_stored_once(api, channels, raw):
    response = post_email(channels["email"], raw)

    assert response.status_code == 201, response.content[:500]
    assert Message.objects.count() == 1
    assert Attachment.objects.count() == 0
    assert QuarantinedMessage.objects.count() == 0


# --- Request size: Content-Length, streamed bodies, forms, provider webhooks -------------------------


def test_a_declared_huge_body_is_refused_before_it_is_read(channels, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    before = counts()
    stream = io.BytesIO(b"{}")  # what actually arrives is never read

    response = Client().generic(
        "POST",
        "/api/v1/inbound/chat/",
        data=b"",
        content_type="application/json",
        HTTP_X_CHANNEL_TOKEN=channels["chat"].secret,
        CONTENT_LENGTH=str(10**12),
        **{"wsgi.input": stream},
    )

    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request body has 1000000000000 bytes; the limit is 4096 bytes. "
        "Nothing was stored."
    }
    assert stream.tell() == 0
    assert counts() == before


def test_a_streamed_body_without_content_length_is_not_read_and_stores_nothing(channels):
    before = counts()
    big = json.dumps(
        {"external_id": "s-1", "session_id": "s", "visitor_id": "v", "body": "x" * 100_000}
    ).encode()

    response = Client().generic(
        "POST",
        "/api/v1/inbound/chat/",
        data=big,
        content_type="application/json",
        HTTP_X_CHANNEL_TOKEN=channels["chat"].secret,
        CONTENT_LENGTH="",  # chunked: Django reads no body without a length
    )

    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid input."
    assert counts() == before


def test_a_form_post_over_the_limit_gets_a_friendly_413_page(channels, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    before = counts()

    response = Client().post("/chat/", {"body": "x" * 10_000})

    assert response.status_code == 413
    page = response.content.decode()
    assert "<h1>Too large</h1>" in page
    assert "the limit is 4096 bytes. Nothing was stored." in page
    assert counts() == before


WEBHOOK = "/anymail/postmark/inbound/"


def postmark(attachments: list[dict]) -> str:
    return json.dumps(
        {
            "FromFull": {"Email": "jane@example.com", "Name": "Jane Doe"},
            "ToFull": [{"Email": "support@desk.example", "Name": ""}],
            "CcFull": [],
            "Subject": "Photos",
            "MessageID": "pm-1",
            "Date": "Sun, 22 Nov 2026 10:00:00 +0000",
            "TextBody": "Two photos attached.",
            "HtmlBody": "",
            "Headers": [{"Name": "Message-ID", "Value": "<photos-1@mail.example.com>"}],
            "Attachments": attachments,
        }
    )


def _attachment(name: str, size: int) -> dict:
    return {
        "Name": name,
        "Content": base64.b64encode(b"x" * size).decode(),
        "ContentType": "image/jpeg",
        "ContentLength": size,
    }


def test_provider_webhook_over_the_request_limit_is_413_and_stores_nothing(
    channels, webhook_auth, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    before = counts()

    response = Client().post(
        WEBHOOK,
        data=postmark([_attachment("big.jpg", 10_000)]),
        content_type="application/json",
        **webhook_auth,
    )

    assert response.status_code == 413
    assert response.json()["detail"].endswith("the limit is 4096 bytes. Nothing was stored.")
    assert counts() == before


def test_provider_webhook_keeps_the_message_and_notes_a_dropped_attachment(
    channels, webhook_auth, settings
):
    # A provider cannot act on a 413 (it retries, then drops the mail): the customer's words are
    # kept, the small file too, and the agent reads which file did not come through.
    settings.ATTACHMENT_MAX_BYTES = 1000

    response = Client().post(
        WEBHOOK,
        data=postmark([_attachment("small.jpg", 500), _attachment("big.jpg", 5000)]),
        content_type="application/json",
        **webhook_auth,
    )

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.body_text == (
        "Two photos attached.\n\n"
        "[Attachment 'big.jpg' (5000 bytes) was not kept: the limit is 1000 bytes.]"
    )
    assert [(a.filename, a.size) for a in message.attachments.all()] == [("small.jpg", 500)]


def test_the_raw_api_refuses_an_oversized_attachment_whole(api, channels, settings):
    # The raw API's caller (your MTA) can bounce the mail to the customer: 413, nothing stored.
    settings.ATTACHMENT_MAX_BYTES = 500
    before = counts()

    response = post_email(channels["email"], email_with_attachment(2000))

    assert response.status_code == 413
    assert counts() == before


# --- Page sizes -------------------------------------------------------------------------------------


@pytest.fixture
def many_conversations(channels):
    for i in range(205):
        send_email(channels["email"], sender=f"C{i} <c{i}@example.com>")


def test_list_apis_and_pages_cap_the_page_size(api_a, agent_a, many_conversations):
    conversations = api_a.get("/api/v1/conversations/?page_size=1000000")
    responses = api_a.get("/api/v1/surveys/responses/?page_size=1000000")
    client = Client()
    client.force_login(agent_a)
    queue = client.get("/?page_size=1000000&view=all")

    assert conversations.status_code == 200
    assert len(conversations.json()["results"]) == 200
    assert conversations.json()["next"] is not None
    assert responses.status_code == 200
    assert responses.json()["results"] == []
    assert queue.status_code == 200  # pages have a fixed size: 25 in the queue
    assert queue.content.decode().count('<td class="num" data-label="#">') == 25


# --- Properties ---------------------------------------------------------------------------------------


@given(
    depth=st.integers(min_value=0, max_value=1500),
    parts=st.integers(min_value=0, max_value=3000),
    line=st.integers(min_value=0, max_value=2 * MAX_BODY_CHARS),
)
@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_shape_parses_within_the_caps(depth, parts, line):
    raw = nested_multipart(depth) if depth else many_parts(parts)
    if line:
        raw = raw.replace(b"hello", b"z" * line, 1)

    parsed = parse_raw_email(raw)

    assert parsed.from_email == "jane@example.com"
    assert len(parsed.attachments) <= MAX_MIME_PARTS
    assert len(parsed.text) <= MAX_BODY_CHARS + 200
    assert len(parsed.html) <= MAX_BODY_CHARS


def test_an_already_parsed_message_is_walked_only_so_deep():
    # 80 levels pass the raw pre-check (fewer than 100 containers) but not the walk's depth cap:
    # the leaf below level 50 is not read (the raw message is stored whole, as always).
    parsed = parse_raw_email(nested_multipart(80))

    assert parsed.subject == "Deep"
    assert parsed.text == ""
    assert parsed.attachments == ()


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/", {"team": "9" * 30}),
        ("/", {"team": str(2**63)}),
    ],
)
def test_an_id_beyond_bigint_in_a_filter_is_a_400_not_a_500(agent_a, channels, path, data):
    # SQLite raises OverflowError on such a parameter; the form stops it before any query.
    client = Client()
    client.force_login(agent_a)

    response = client.get(path, data)

    assert response.status_code == 400
    assert response.content.decode().startswith("Invalid queue filter: * team")
