"""A customer with a bit of everything (email with a file, reply, note, call, survey answer)."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import time_machine
from django.conf import settings
from django.test import TestCase

from surveys.models import Survey
from surveys.services import Answer, survey_answer, surveys_send_due
from tests.factories import send_call
from tickets.models import Conversation, Customer
from tickets.services import (
    InboundResult,
    conversation_reply,
    conversation_solve,
    identity_link,
    inbound_email_raw,
)

ATTACHMENT_SECRET = b"Scan of passport P-55512 belonging to the customer"


def email_with_file(sender: str, subject: str, body: str, filename: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = settings.SUPPORT_EMAIL
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="mail.example.org")
    message.set_content(body)
    message.add_attachment(
        ATTACHMENT_SECRET, maintype="application", subtype="octet-stream", filename=filename
    )
    return bytes(message)


def customer_with_everything(channels, agent):
    """A customer on email and phone with a file, a reply, a note, a call and a survey answer."""

    first = inbound_email_raw(
        channel=channels["email"],
        raw=email_with_file(
            "Jane Roe <jane.roe@example.org>",
            "Invoice is wrong",
            "My invoice 4411 charges me twice.",
            "invoice 4411.pdf",
        ),
    )
    assert isinstance(first, InboundResult)
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_reply(conversation=conversation, author=agent, body="Refunded the double charge.")
    conversation_reply(
        conversation=conversation, author=agent, body="Checked with billing.", internal=True
    )
    customer = Customer.objects.get(pk=first.customer_id)
    identity_link(customer=customer, kind="phone", value="+1 415 555 0199", actor=agent)
    call = send_call(channels["phone"], from_number="+1 415 555 0199", notes="Called to confirm")
    assert call.customer_id == customer.pk
    with TestCase.captureOnCommitCallbacks(execute=True):
        solve_event = conversation_solve(conversation=conversation, actor=agent)
    survey = Survey.objects.get(event=solve_event)
    with time_machine.travel(survey.due_at + timedelta(minutes=1), tick=False):
        surveys_send_due()
        survey.refresh_from_db()
        assert survey.status == Survey.Status.SENT, (survey.status, survey.skip_reason)
        survey_answer(
            survey=survey,
            answer=Answer(
                resolved="yes", contacts_declared=1, csat=5, nps=9, comment="Quick, thanks"
            ),
        )
    return customer
