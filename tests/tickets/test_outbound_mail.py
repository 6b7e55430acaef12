"""Mail a customer expects, delivered through a real SMTP server (aiosmtpd, ``smtp_server``).

Replies are text and HTML with the files attached, From the mailbox's own address as "Agent via
Desk", threaded, Cc'd as given and Bcc'd invisibly; the people copied become participants whose
mail threads without making them customers; signatures and admin templates render their
variables and nothing else; the acknowledgement goes only to people, once, under the cap.
"""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from supportdesk.models import AuditEntry, MailTemplate, SentMail
from supportdesk.services import (
    automatic_mail_claim,
    mail_template_save,
    notification_create,
    user_signature_update,
)
from tests.factories import email_bytes, make_staff
from tests.helpers import post_email, web
from tickets.models import (
    Attachment,
    Conversation,
    ConversationParticipant,
    Customer,
    Identity,
    Message,
)
from tickets.services import (
    OutboundFile,
    channel_create_or_update,
    channel_mail_settings_update,
    conversation_reply,
)

# Real commits: replies leave through the outbox after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

REPLIES = "/api/v1/conversations/{}/replies/"
PDF = b"%PDF-1.4\n% an invoice\n" + bytes(range(256)) * 4


@pytest.fixture
def mailbox(team_a):
    return channel_create_or_update(
        kind="email", name="Help inbox", team_name="Team A", address="help@desk.example"
    )


def inbound(channel, **kwargs) -> Conversation:
    response = post_email(channel, email_bytes(**kwargs))
    assert response.status_code == 201, response.content
    return Conversation.objects.get(pk=response.json()["conversation"])


def sender(message) -> tuple[str, str]:
    (address,) = message["From"].addresses
    return address.display_name, address.addr_spec


def stored_counts() -> tuple[int, int, int, int]:
    return (
        Message.objects.filter(direction="outbound").count(),
        Attachment.objects.count(),
        ConversationParticipant.objects.count(),
        SentMail.objects.count(),
    )


# --- One reply: text + HTML + file, threaded, Cc as given, Bcc invisible ------------------------


def test_a_reply_with_a_file_and_a_cc_is_one_threaded_multipart_message(
    smtp_server, mailbox, agent_a
):
    # Given: Jane wrote to the help inbox
    conversation = inbound(
        mailbox,
        sender="Jane Doe <jane@example.com>",
        to="help@desk.example",
        message_id="<jane-1@mail.example.com>",
        subject="Invoice please",
    )

    # When: Alice replies in Markdown with the invoice, copying Jane's colleague and Bcc'ing finance
    reply = conversation_reply(
        conversation=conversation,
        author=agent_a,
        body="Here is **your invoice**:\n\n- order 1234\n- paid",
        cc=["Sam@Example.com"],
        bcc=["finance@desk-books.example"],
        attachments=[
            OutboundFile(filename="invoice.pdf", content_type="application/pdf", content=PDF)
        ],
    )

    # Then: one SMTP transaction reaches Jane, Sam and finance
    assert len(smtp_server.received) == 1
    sent = smtp_server.received[0]
    assert sorted(sent.rcpt_tos) == [
        "finance@desk-books.example",
        "jane@example.com",
        "sam@example.com",
    ]
    assert smtp_server.to("jane@example.com") == smtp_server.to("sam@example.com") == [sent]
    message = sent.message
    assert sender(message) == ("Alice Archer via Support", "help@desk.example")
    assert message["To"] == "jane@example.com"
    assert message["Cc"] == "sam@example.com"
    assert message["Bcc"] is None
    assert b"finance@desk-books.example" not in sent.raw
    assert message["In-Reply-To"] == "<jane-1@mail.example.com>"
    assert message["References"] == "<jane-1@mail.example.com>"
    assert message["Message-ID"] == f"<{reply.message_id}>"
    assert message["Subject"] == f"Re: Invoice please [#{conversation.pk}]"
    # multipart/mixed: an alternative (text, HTML) and the file
    assert message.get_content_type() == "multipart/mixed"
    parts = [part.get_content_type() for part in message.walk()]
    assert parts == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    assert text.strip() == "Here is **your invoice**:\n\n- order 1234\n- paid"
    assert "<strong>your invoice</strong>" in html
    assert "<li>order 1234</li>" in html
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content() == PDF
    # And the reply is stored with its file and copies; Sam is now a participant
    reply.refresh_from_db()
    assert reply.delivery_state == "sent"
    assert (reply.cc, reply.bcc) == (["sam@example.com"], ["finance@desk-books.example"])
    stored = Attachment.objects.get(message=reply)
    assert (stored.filename, stored.content_type, stored.size) == (
        "invoice.pdf",
        "application/pdf",
        len(PDF),
    )
    assert list(conversation.participants.values_list("email", "source")) == [
        ("sam@example.com", "agent")
    ]
    # Every recipient is recorded, so a bounce from any of them is recognised
    assert sorted(
        SentMail.objects.filter(message_id=reply.message_id).values_list("address", flat=True)
    ) == ["finance@desk-books.example", "jane@example.com", "sam@example.com"]


def test_signatures_of_the_agent_and_the_mailbox_follow_the_reply_with_their_variables(
    smtp_server, mailbox, agent_a, admin_user
):
    user_signature_update(user=agent_a, signature="{agent.name}\n{agent.email}", actor=agent_a)
    channel_mail_settings_update(
        channel=mailbox,
        from_name="Example Help",
        signature="{channel.name} · {desk.name} · ticket {conversation.id}",
        acknowledge=False,
        actor=admin_user,
    )
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    conversation_reply(conversation=conversation, author=agent_a, body="Done.")

    message = smtp_server.received[0].message
    assert sender(message) == ("Alice Archer via Example Help", "help@desk.example")
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == (
        "Done.\n\n-- \n\nAlice Archer\nalice@desk.example\n\n"
        f"Help inbox · Example Help · ticket {conversation.pk}"
    )
    assert AuditEntry.objects.filter(action="channel.mail_changed").count() == 1
    assert AuditEntry.objects.filter(action="signature.changed").count() == 1


# --- The API: multipart and JSON ----------------------------------------------------------------


def test_api_multipart_reply_with_files_and_repeated_copies(smtp_server, mailbox, api_a):
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    response = api_a.post(
        REPLIES.format(conversation.pk),
        {
            "body": "Both files attached.",
            "cc": ["sam@example.com", "lee@example.com"],
            "bcc": ["audit@example.org"],
            "attachments": [
                _upload("a.txt", b"first file", "text/plain"),
                _upload("b.pdf", PDF, "application/pdf"),
            ],
        },
        format="multipart",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cc"] == ["sam@example.com", "lee@example.com"]
    assert body["bcc"] == ["audit@example.org"]
    assert [(a["filename"], a["size"]) for a in body["attachments"]] == [
        ("a.txt", 10),
        ("b.pdf", len(PDF)),
    ]
    (sent,) = smtp_server.received
    assert sorted(sent.rcpt_tos) == [
        "audit@example.org",
        "jane@example.com",
        "lee@example.com",
        "sam@example.com",
    ]
    assert sent.message["Cc"] == "sam@example.com, lee@example.com"
    assert [a.get_filename() for a in sent.message.iter_attachments()] == ["a.txt", "b.pdf"]


def test_api_json_reply_keeps_working_with_copies_as_lists(smtp_server, mailbox, api_a):
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    response = api_a.post(
        REPLIES.format(conversation.pk),
        {"body": "Plain *JSON* reply", "cc": ["sam@example.com"], "bcc": []},
        format="json",
    )

    assert response.status_code == 201, response.content
    (sent,) = smtp_server.received
    assert sorted(sent.rcpt_tos) == ["jane@example.com", "sam@example.com"]
    assert sent.message.get_body(("html",)).get_content().count("<em>JSON</em>") == 1
    assert response.json()["attachments"] == []


def test_api_file_over_the_limit_is_413_and_nothing_is_stored(
    smtp_server, mailbox, api_a, settings
):
    settings.ATTACHMENT_MAX_BYTES = 1000
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")
    before = stored_counts()

    response = api_a.post(
        REPLIES.format(conversation.pk),
        {
            "body": "Too big",
            "cc": ["sam@example.com"],
            "attachments": [_upload("small.txt", b"ok"), _upload("big.bin", b"x" * 1001)],
        },
        format="multipart",
    )

    assert response.status_code == 413
    assert "big.bin" in response.json()["detail"]
    assert "1000 bytes" in response.json()["detail"]
    assert stored_counts() == before
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"cc": ["not an address"]}, "cc"),
        ({"bcc": ["a@b@c"]}, "bcc"),
        ({"cc": [f"p{n}@example.com" for n in range(21)]}, "cc"),
        ({"internal": True, "cc": ["sam@example.com"]}, "internal note"),
    ],
)
def test_api_bad_copies_are_400_and_nothing_is_stored(
    smtp_server, mailbox, api_a, payload, fragment
):
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")
    before = stored_counts()
    notes = Message.objects.filter(direction="note").count()

    response = api_a.post(
        REPLIES.format(conversation.pk), {"body": "Hello", **payload}, format="json"
    )

    assert response.status_code == 400, response.content
    assert fragment in str(response.json())
    assert stored_counts() == before
    assert Message.objects.filter(direction="note").count() == notes
    assert smtp_server.received == []


def test_an_agent_of_another_team_gets_404_and_nothing_is_sent(smtp_server, mailbox, api_b):
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")
    before = stored_counts()

    response = api_b.post(
        REPLIES.format(conversation.pk),
        {"body": "Not mine", "attachments": [_upload("a.txt", b"x")]},
        format="multipart",
    )

    assert response.status_code == 404
    assert stored_counts() == before


# --- Participants: copied people are recognised, never a new customer or a hijack --------------


def test_inbound_cc_are_participants_and_their_reply_all_threads_as_theirs(
    smtp_server, mailbox, agent_a
):
    # Given: Jane writes, copying her colleague Sam (and the desk, twice)
    conversation = inbound(
        mailbox,
        sender="Jane Doe <jane@example.com>",
        to="help@desk.example, Sam Smith <sam@example.com>",
        message_id="<jane-1@mail.example.com>",
        extra_headers={"Cc": "support@desk.example, Kim <kim@example.com>"},
    )
    assert list(conversation.participants.values_list("email", "name", "source")) == [
        ("sam@example.com", "Sam Smith", "copied"),
        ("kim@example.com", "Kim", "copied"),
    ]
    customers = Customer.objects.count()

    # When: Sam answers all, quoting Jane's message (no reply from the desk yet)
    sam = inbound(
        mailbox,
        sender="Sam Smith <sam@example.com>",
        to="help@desk.example",
        in_reply_to="<jane-1@mail.example.com>",
        extra_headers={"Cc": "jane@example.com"},
        body="Adding: it was order 1234.",
    )

    # Then: it is in Jane's conversation, as Sam's, and nobody new became a customer
    assert sam.pk == conversation.pk
    message = Message.objects.filter(conversation=conversation).latest("id")
    assert message.participant.email == "sam@example.com"
    assert message.identity is None
    assert Customer.objects.count() == customers
    assert not Identity.objects.filter(value="sam@example.com").exists()
    # Jane (the customer) is never her own participant
    assert conversation.participants.count() == 2
    # And the composer offers both for reply-all; the reply still goes to Jane
    page = web(agent_a).get(f"/conversations/{conversation.pk}/")
    assert [p.email for p in page.context["participants"]] == ["sam@example.com", "kim@example.com"]
    assert b'name="cc" value="sam@example.com"' in page.content
    reply = conversation_reply(conversation=conversation, author=agent_a, body="Thanks both")
    assert reply.identity.value == "jane@example.com"


def test_a_stranger_quoting_the_customers_message_id_is_not_a_participant(mailbox):
    conversation = inbound(
        mailbox,
        sender="jane@example.com",
        to="help@desk.example",
        message_id="<jane-1@mail.example.com>",
        extra_headers={"Cc": "sam@example.com"},
    )

    eve = inbound(
        mailbox,
        sender="eve@evil.example",
        to="help@desk.example",
        in_reply_to="<jane-1@mail.example.com>",
        subject=f"Re: My order has not arrived [#{conversation.pk}]",
    )

    assert eve.pk != conversation.pk
    assert eve.customer_id != conversation.customer_id
    assert list(conversation.participants.values_list("email", flat=True)) == ["sam@example.com"]
    assert Message.objects.filter(conversation=conversation).count() == 1


# --- Templates: variables only, injection renders literally -------------------------------------

HOSTILE = [
    "{{ settings.SECRET_KEY }}",
    "{% load static %}{% debug %}",
    "{0.__class__.__init__.__globals__}",
    "{customer.name.__class__}",
    "{customer.__dict__}",
    "${7*7} #{7*7} <%= 7*7 %>",
    "{unknown}",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_template_injection_in_a_stored_template_renders_literally(
    smtp_server, mailbox, admin_user, hostile
):
    mail_template_save(
        key="acknowledgement",
        language="en",
        subject="Got it",
        body=f"Hello {{customer.first_name}}: {hostile}",
        actor=admin_user,
    )
    channel_mail_settings_update(
        channel=mailbox, from_name="", signature="", acknowledge=True, actor=admin_user
    )

    inbound(mailbox, sender="Jane Doe <jane@example.com>", to="help@desk.example")

    (sent,) = smtp_server.received
    text = sent.message.get_body(("plain",)).get_content().strip()
    assert text == f"Hello Jane: {hostile}"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_template_injection_in_a_signature_renders_literally(
    smtp_server, mailbox, agent_a, hostile
):
    user_signature_update(user=agent_a, signature=f"{{agent.first_name}} {hostile}", actor=agent_a)
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    reply = conversation_reply(conversation=conversation, author=agent_a, body="Hi")

    assert reply.body_text == f"Hi\n\n-- \n\nAlice {hostile}"
    html = smtp_server.received[0].message.get_body(("html",)).get_content()
    assert "<script" not in html


def test_html_in_a_reply_is_shown_as_text_never_passed_on(smtp_server, mailbox, agent_a):
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    conversation_reply(
        conversation=conversation,
        author=agent_a,
        body="<img src=x onerror=alert(1)> [link](javascript:alert(1)) <script>x</script>",
    )

    html = smtp_server.received[0].message.get_body(("html",)).get_content()
    assert "<img" not in html
    assert "<script" not in html
    assert "javascript:" not in html.replace("javascript:alert(1))", "")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_templates_fall_back_from_language_to_default_to_built_in(admin_user):
    from supportdesk.mailtemplates import built_in_wording, mail_template_for

    assert mail_template_for(key="acknowledgement", language="es") == built_in_wording(
        key="acknowledgement", language="es"
    )
    assert mail_template_for(key="acknowledgement", language="es")[0] == (
        "Re: {conversation.subject}"
    )
    assert mail_template_for(key="acknowledgement", language="es")[1].startswith(
        "Hola, {customer.first_name}:"
    )
    mail_template_save(
        key="acknowledgement", language="en", subject="EN", body="english", actor=admin_user
    )
    mail_template_save(
        key="acknowledgement", language="es", subject="ES", body="español", actor=admin_user
    )

    assert mail_template_for(key="acknowledgement", language="es") == ("ES", "español")
    assert mail_template_for(key="acknowledgement", language="es-mx") == ("ES", "español")
    # A language the desk has built-in words for: those, not the admin's English.
    assert mail_template_for(key="acknowledgement", language="fr")[1].startswith(
        "Bonjour {customer.first_name}"
    )
    # A language without catalogues, or none: the default language's row.
    assert mail_template_for(key="acknowledgement", language="it") == ("EN", "english")
    assert mail_template_for(key="acknowledgement") == ("EN", "english")
    assert MailTemplate.objects.count() == 2
    assert AuditEntry.objects.filter(action="mail_template.saved").count() == 2


def test_staff_notification_emails_use_the_stored_template(admin_user, manager_a):
    mail_template_save(
        key="staff_notification",
        language="en",
        subject="[{desk.name}] {notification.title}",
        body="Hi {recipient.name},\n\n{notification.body}\n\nOpen: {notification.link}",
        actor=admin_user,
    )
    mail.outbox.clear()

    notification_create(
        recipient=manager_a,
        kind="qa",
        title="Review due",
        body="3 samples",
        url="/qa/",
        email=True,
    )

    (sent,) = mail.outbox
    assert sent.subject == "[Support] Review due"
    assert sent.body == "Hi Mia Manager,\n\n3 samples\n\nOpen: http://localhost:8000/qa/\n"


# --- Acknowledgement: people only, once, threaded, under the cap --------------------------------


def test_acknowledgement_is_off_by_default(smtp_server, mailbox):
    inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    assert smtp_server.received == []


def test_acknowledgement_is_threaded_and_sent_once_per_conversation(
    smtp_server, mailbox, admin_user
):
    channel_mail_settings_update(
        channel=mailbox, from_name="Example Help", signature="", acknowledge=True, actor=admin_user
    )

    conversation = inbound(
        mailbox,
        sender="Jane Doe <jane@example.com>",
        to="help@desk.example",
        message_id="<jane-1@mail.example.com>",
        subject="Broken lamp",
    )
    inbound(
        mailbox,
        sender="jane@example.com",
        to="help@desk.example",
        in_reply_to="<jane-1@mail.example.com>",
        subject="Re: Broken lamp",
    )

    (sent,) = smtp_server.received
    assert sent.rcpt_tos == ["jane@example.com"]
    message = sent.message
    assert sender(message) == ("Example Help", "help@desk.example")
    assert message["Subject"] == f"Re: Broken lamp [#{conversation.pk}]"
    assert message["In-Reply-To"] == "<jane-1@mail.example.com>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message.get_body(("plain",)).get_content().startswith("Hello Jane,")
    # Not a reply: nothing in the timeline, no first response
    assert not Message.objects.filter(conversation=conversation, direction="outbound").exists()
    assert SentMail.objects.filter(kind="acknowledgement").count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "bulk"},
        {"List-Id": "<news.example.com>"},
        {"Return-Path": "<>"},
    ],
)
def test_no_acknowledgement_to_auto_replies_or_lists(smtp_server, mailbox, admin_user, headers):
    channel_mail_settings_update(
        channel=mailbox, from_name="", signature="", acknowledge=True, actor=admin_user
    )

    post_email(
        mailbox,
        email_bytes(sender="robot@example.com", to="help@desk.example", extra_headers=headers),
    )

    assert smtp_server.received == []
    assert not SentMail.objects.filter(kind="acknowledgement").exists()


def test_no_acknowledgement_to_a_bounce(smtp_server, mailbox, admin_user):
    channel_mail_settings_update(
        channel=mailbox, from_name="", signature="", acknowledge=True, actor=admin_user
    )

    response = post_email(
        mailbox,
        email_bytes(
            sender="MAILER-DAEMON@mx.example.com",
            to="help@desk.example",
            subject="Undelivered Mail Returned to Sender",
        ),
    )

    assert response.status_code in (201, 202)
    assert smtp_server.received == []


def test_no_acknowledgement_past_the_automatic_mail_cap(smtp_server, mailbox, admin_user, settings):
    settings.AUTO_MAIL_MAX_PER_HOUR = 2
    channel_mail_settings_update(
        channel=mailbox, from_name="", signature="", acknowledge=True, actor=admin_user
    )
    for n in range(2):
        automatic_mail_claim(address="jane@example.com", message_id=f"s{n}", kind="survey")

    inbound(mailbox, sender="jane@example.com", to="help@desk.example")
    inbound(mailbox, sender="kim@example.com", to="help@desk.example")

    assert [r.rcpt_tos for r in smtp_server.received] == [["kim@example.com"]]


# --- Pages: templates (admins), signature (everyone's own), sending settings (admins) -----------


def test_template_pages_are_for_admins_and_preview_renders_what_is_typed(admin_user, agent_a):
    assert web(agent_a).get("/settings/email-templates/").status_code == 403
    assert web(agent_a).get("/settings/email-templates/acknowledgement/").status_code == 403
    assert (
        web(agent_a)
        .post(
            "/settings/email-templates/acknowledgement/",
            {"language": "en", "subject": "x", "body": "y"},
        )
        .status_code
        == 403
    )
    assert not MailTemplate.objects.exists()

    client = web(admin_user)
    assert client.get("/settings/email-templates/").status_code == 200
    page = client.get("/settings/email-templates/acknowledgement/")
    assert page.status_code == 200
    assert "we got your message" in page.content.decode()
    preview = client.post(
        "/settings/email-templates/acknowledgement/preview/",
        {"subject": "Hi {customer.first_name}", "body": "**Bold** {{ evil }}"},
    )
    assert preview.status_code == 200
    content = preview.content.decode()
    assert "Hi Jane" in content
    assert "<strong>Bold</strong>" in content
    assert "{{ evil }}" in content

    saved = client.post(
        "/settings/email-templates/acknowledgement/?language=es",
        {"language": "es", "subject": "Recibido", "body": "Hola, {customer.first_name}:"},
    )
    assert saved.status_code == 302
    assert list(MailTemplate.objects.values_list("key", "language", "subject")) == [
        ("acknowledgement", "es", "Recibido")
    ]
    assert client.get("/settings/email-templates/nope/").status_code == 404


def test_each_agent_edits_their_own_signature(agent_a, agent_b):
    response = web(agent_a).post("/settings/signature/", {"signature": "Alice from {desk.name}"})

    assert response.status_code == 302
    agent_a.refresh_from_db()
    agent_b.refresh_from_db()
    assert agent_a.signature == "Alice from {desk.name}"
    assert agent_b.signature == ""
    page = web(agent_a).get("/settings/signature/")
    assert "Alice from Support" in page.content.decode()


def test_sending_settings_are_for_admins(mailbox, admin_user, agent_a):
    url = f"/settings/sending/{mailbox.pk}/"
    form = {"from_name": "Help", "signature": "sig", "acknowledge": "on"}

    assert web(agent_a).get("/settings/sending/").status_code == 403
    assert web(agent_a).post(url, form).status_code == 403
    mailbox.refresh_from_db()
    assert (mailbox.from_name, mailbox.signature, mailbox.acknowledge) == ("", "", False)

    assert web(admin_user).get("/settings/sending/").status_code == 200
    assert web(admin_user).post(url, form).status_code == 302
    mailbox.refresh_from_db()
    assert (mailbox.from_name, mailbox.signature, mailbox.acknowledge) == ("Help", "sig", True)


def test_composer_file_over_the_limit_is_413_with_the_draft_kept(
    smtp_server, mailbox, agent_a, settings
):
    settings.ATTACHMENT_MAX_BYTES = 100
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")
    before = stored_counts()

    response = web(agent_a).post(
        f"/conversations/{conversation.pk}/reply/",
        {
            "body": "My draft",
            "channel": "email",
            "cc_more": "sam@example.com",
            "attachments": [_upload("huge.bin", b"x" * 101)],
        },
    )

    assert response.status_code == 413
    content = response.content.decode()
    assert "huge.bin" in content
    assert "My draft" in content
    assert 'value="sam@example.com"' in content
    assert stored_counts() == before


def _upload(name: str, content: bytes, content_type: str = "application/octet-stream"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


def test_an_unknown_client_gets_401(mailbox):
    conversation = inbound(mailbox, sender="jane@example.com", to="help@desk.example")

    response = APIClient().post(REPLIES.format(conversation.pk), {"body": "x"}, format="json")

    assert response.status_code == 401


def test_make_staff_signature_default_is_empty(db):
    assert make_staff("x@desk.example", role="agent", teams=[]).signature == ""


def test_the_survey_email_uses_the_stored_wording_and_keeps_its_answer_links(
    mailbox, agent_a, admin_user
):
    from surveys.services import survey_settings_update, surveys_send_due
    from tickets.services import conversation_solve

    mail_template_save(
        key="survey",
        language="en",
        subject="How did {agent.first_name} do?",
        body="Hi {customer.first_name}, about “{conversation.subject}”: {{ survey.token }}",
        actor=admin_user,
    )
    survey_settings_update(min_days_between=0, delay_minutes=0)
    conversation = inbound(
        mailbox, sender="Jane Doe <jane@example.com>", to="help@desk.example", subject="Lamp"
    )
    conversation_reply(conversation=conversation, author=agent_a, body="Fixed")
    conversation_solve(conversation=conversation, actor=agent_a)
    mail.outbox.clear()

    surveys_send_due()

    (sent,) = mail.outbox
    assert sent.subject == f"How did Alice do? [#{conversation.pk}]"
    assert sent.body.startswith(
        "Hi Jane, about “Lamp”: {{ survey.token }}\n\nWas your issue resolved?"
    )
    assert "/s/" in sent.body  # the answer links stay
    html = sent.alternatives[0][0]
    assert "Hi Jane, about “Lamp”: {{ survey.token }}" in html
