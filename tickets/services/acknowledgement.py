"""The optional "we got your message" email of a mailbox (``Channel.acknowledge``).

Sent once per new conversation, threaded under the customer's message, only to a person: never
to automated mail (auto-replies, lists, bounces, our own mail: ``Message.automated``), never to
an address marked undeliverable, and never past the per-address cap on automatic mail
(``supportdesk.services.automatic_mail_claim``), which is what breaks a loop between two
autoresponders. It is not a reply: it is not stored as a message and counts in no metric.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from supportdesk import extensions, mailtemplates
from supportdesk.models import MailTemplate, SentMail
from supportdesk.outbox import outbox_enqueue
from supportdesk.services import automatic_mail_claim, automatic_mail_release
from tickets import tokens
from tickets.models import Message
from tickets.services.outbound_mail import sender_address, sender_desk_name

logger = logging.getLogger(__name__)


def acknowledgement_enqueue(*, message: Message) -> None:
    """Queue the acknowledgement of an inbound message (in the caller's transaction)."""
    outbox_enqueue(
        task_name="tickets.tasks.acknowledgement_send_task", kwargs={"message_id": message.pk}
    )


def acknowledgement_variables(*, message: Message) -> dict[str, str]:
    conversation = message.conversation
    customer = conversation.customer
    identity = message.identity
    name = customer.name or (identity.display_value if identity else "")
    return {
        "customer.name": name,
        "customer.first_name": mailtemplates.first_word(customer.name),
        "conversation.id": str(conversation.pk),
        "conversation.subject": conversation.subject,
        "channel.name": message.channel.name if message.channel else "",
        "desk.name": sender_desk_name(message.channel),
        # Routing's promise ("Monday 9 November 2026, 11:00 (Europe/Berlin)"), if any.
        "conversation.due": extensions.annotate("conversation.promise", [conversation.pk]).get(
            conversation.pk, ""
        ),
    }


def acknowledgement_send(*, message_id: int) -> bool:
    """Send the acknowledgement of inbound ``message_id``; True if this call sent it.

    Checks again what ingestion checked (the mailbox still acknowledges, the message is a
    person's, the address deliverable), then claims the mail under the per-address cap. Sent at
    most once per message: the SentMail row of the claim names the acknowledgement's Message-ID
    (derived from the inbound message), which is also what a bounce of it must quote.
    """
    message = (
        Message.objects.select_related("conversation__customer", "channel", "identity")
        .filter(pk=message_id, direction=Message.Direction.INBOUND)
        .first()
    )
    if message is None or message.channel is None or message.identity is None:
        return False
    identity = message.identity
    if (
        not message.channel.acknowledge
        or message.automated
        or identity.kind != "email"
        or identity.undeliverable_at is not None
    ):
        return False
    marker = acknowledgement_message_id(message=message)
    if SentMail.objects.filter(kind=SentMail.Kind.ACKNOWLEDGEMENT, message_id=marker).exists():
        return False
    claim = automatic_mail_claim(
        address=identity.value, message_id=marker, kind=SentMail.Kind.ACKNOWLEDGEMENT
    )
    if claim is None:
        logger.info("acknowledgement of message %s held back by the mail cap", message_id)
        return False
    try:
        acknowledgement_email(message=message).send(fail_silently=False)
    except Exception:
        automatic_mail_release(claim=claim)
        raise
    return True


def acknowledgement_message_id(*, message: Message) -> str:
    """One per inbound message. Not a secret: it is never stored as a Message, so it threads
    nothing by itself (the customer's reply threads by their own Message-ID and the reply
    address)."""
    domain = settings.SUPPORT_EMAIL.partition("@")[2] or "supportdesk.localhost"
    return f"sd.ack.{message.pk}@{domain}"


def acknowledgement_email(*, message: Message) -> EmailMultiAlternatives:
    """The acknowledgement as sent: the stored template (or the built-in wording), threaded."""
    assert message.identity is not None
    conversation = message.conversation
    # In the customer's language (Customer.language, detected or set by an agent).
    subject, body = mailtemplates.mail_template_for(
        key=MailTemplate.Key.ACKNOWLEDGEMENT, language=conversation.customer.language
    )
    rendered = mailtemplates.mail_render(
        subject=subject, body=body, variables=acknowledgement_variables(message=message)
    )
    tag = tokens.subject_tag(conversation.pk)
    subject = rendered.subject if tag in rendered.subject else f"{rendered.subject} {tag}"
    headers = {
        "Message-ID": f"<{acknowledgement_message_id(message=message)}>",
        "Reply-To": tokens.reply_address(conversation.pk),
        # RFC 3834: an automatic answer; well-behaved autoresponders do not answer it.
        "Auto-Submitted": "auto-replied",
        "X-Auto-Response-Suppress": "All",
        "X-Supportdesk-Conversation": str(conversation.pk),
    }
    if message.message_id:
        headers["In-Reply-To"] = f"<{message.message_id}>"
        references = [*message.references.split(), f"<{message.message_id}>"]
        headers["References"] = " ".join(
            ref if ref.startswith("<") else f"<{ref}>" for ref in references[-20:]
        )
    desk = " ".join(sender_desk_name(message.channel).replace('"', "'").split())[:200]
    email = EmailMultiAlternatives(
        subject=subject,
        body=rendered.text,
        from_email=f'"{desk}" <{sender_address(message.channel)}>',
        to=[message.identity.value],
        headers=headers,
    )
    email.attach_alternative(rendered.html, "text/html")
    return email
