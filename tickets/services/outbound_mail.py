"""What an email reply carries besides the agent's words: copies, files, signatures, HTML, From.

``conversation_reply`` calls these while it stores the reply; ``delivery`` reads what they
stored when it builds the email. Participants (people copied on a conversation) are kept here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from supportdesk import mailtemplates
from supportdesk.errors import ApplicationError, PayloadTooLarge
from supportdesk.models import User
from tickets.identities import normalise_email
from tickets.models import (
    Attachment,
    Channel,
    ChannelKind,
    Conversation,
    ConversationParticipant,
    Identity,
    Message,
)

# A reply goes to a handful of people; more is a mailing, which a support desk does not send.
MAX_COPIES = 20
MAX_REPLY_FILES = 10


@dataclass(frozen=True)
class OutboundFile:
    """A file an agent attaches to a reply (from the composer or the API)."""

    filename: str
    content_type: str
    content: bytes


def reply_files_check(files: Sequence[OutboundFile]) -> None:
    """The inbound limits (``ATTACHMENT_MAX_BYTES`` per file) hold for replies too: 413, and
    the caller has stored nothing yet."""
    if len(files) > MAX_REPLY_FILES:
        raise ApplicationError(f"A reply takes at most {MAX_REPLY_FILES} files.")
    limit = settings.ATTACHMENT_MAX_BYTES
    for file in files:
        if len(file.content) > limit:
            raise PayloadTooLarge(
                f"Attachment {file.filename!r} has {len(file.content)} bytes; the limit is "
                f"{limit} bytes. Nothing was stored."
            )
        if not file.content:
            raise ApplicationError(f"Attachment {file.filename!r} is empty.")


def reply_files_store(*, message: Message, files: Sequence[OutboundFile]) -> list[Attachment]:
    """Store the files like inbound attachments: a random path, the name only shown."""
    stored = []
    for file in files:
        record = Attachment(
            message=message,
            filename=(file.filename or "attachment")[:255],
            content_type=(file.content_type or "application/octet-stream")[:255],
            size=len(file.content),
        )
        record.file.save(file.filename or "attachment", ContentFile(file.content), save=False)
        record.save()
        stored.append(record)
    return stored


def _own_addresses() -> set[str]:
    own = {settings.SUPPORT_EMAIL.lower()}
    own.update(
        address.lower()
        for address in Channel.objects.filter(kind=ChannelKind.EMAIL)
        .exclude(address="")
        .values_list("address", flat=True)
    )
    return own


def reply_copies_clean(
    *, cc: Iterable[str], bcc: Iterable[str], to: Identity | None
) -> tuple[list[str], list[str]]:
    """Normalised, de-duplicated Cc and Bcc lists; 400 for an address that is not one.

    The customer's own address and the desk's addresses are dropped (copying the customer to
    themselves, or the desk to itself, makes loops and duplicates); an address in both keeps Cc.
    """
    own = _own_addresses()
    skip = set(own)
    if to is not None:
        skip.add(to.value)
    cleaned: list[list[str]] = []
    for field, addresses in (("cc", cc), ("bcc", bcc)):
        kept: list[str] = []
        for raw in addresses:
            raw = (raw or "").strip()
            if not raw:
                continue
            try:
                address = normalise_email(raw)
            except ValidationError as exc:
                raise ApplicationError(f"{field}: {raw[:100]!r} is not an email address.") from exc
            if address not in skip and address not in kept:
                kept.append(address)
        if len(kept) > MAX_COPIES:
            raise ApplicationError(f"{field} takes at most {MAX_COPIES} addresses.")
        skip.update(kept)
        cleaned.append(kept)
    return cleaned[0], cleaned[1]


def participants_add(
    *,
    conversation: Conversation,
    people: Iterable[tuple[str, str]],
    source: str,
) -> int:
    """Record (address, name) pairs as participants of ``conversation``; existing ones are kept
    (the first source stays). Returns how many were new. Runs in the caller's transaction."""
    added = 0
    for address, name in people:
        try:
            with transaction.atomic():
                _, created = ConversationParticipant.objects.get_or_create(
                    conversation=conversation,
                    email=address,
                    defaults={"name": name[:200], "source": source},
                )
        except IntegrityError:
            created = False  # a concurrent add of the same address won
        added += int(created)
    return added


def signature_variables(
    *, agent: User | None, channel: Channel | None, conversation: Conversation
) -> dict[str, str]:
    customer = conversation.customer
    name = agent.full_name if agent and agent.full_name else (agent.email if agent else "")
    return {
        "agent.name": name,
        "agent.first_name": mailtemplates.first_word(agent.full_name) if agent else "",
        "agent.email": agent.email if agent else "",
        "channel.name": channel.name if channel else "",
        "channel.address": (channel.address if channel else "") or settings.SUPPORT_EMAIL,
        "desk.name": sender_desk_name(channel),
        "customer.name": customer.name,
        "conversation.id": str(conversation.pk),
    }


def reply_bodies(
    *, body: str, agent: User | None, channel: Channel | None, conversation: Conversation
) -> tuple[str, str]:
    """(text, html) of an email reply: the agent's text or Markdown, then the agent's and the
    mailbox's signatures (rendered with their variables). The text part is what the agent typed,
    so Markdown stays readable there; the HTML part is rendered and sanitised."""
    variables = signature_variables(agent=agent, channel=channel, conversation=conversation)
    signatures = [
        mailtemplates.render(signature, variables).strip()
        for signature in ((agent.signature if agent else ""), channel.signature if channel else "")
        if signature and signature.strip()
    ]
    text = body
    if signatures:
        text = "\n\n".join([body, "-- ", *signatures])
    html_parts = [mailtemplates.markdown_html(body)]
    html_parts += [
        f'<div class="signature">{mailtemplates.markdown_html(signature)}</div>'
        for signature in signatures
    ]
    return text, "\n".join(html_parts)


def sender_desk_name(channel: Channel | None) -> str:
    return (channel.from_name if channel else "") or mailtemplates.desk_name()


def sender_address(channel: Channel | None) -> str:
    """The mailbox's own address; the desk's SUPPORT_EMAIL for a channel without one."""
    return ((channel.address if channel else "") or settings.SUPPORT_EMAIL).lower()
