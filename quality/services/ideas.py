"""Customer ideas agents log from conversations, and cancellations with their reasons."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from quality.models import (
    Cancellation,
    CancellationReason,
    Idea,
    IdeaMention,
)
from quality.services.common import DEFAULT_CANCELLATION_REASONS, bounded_text
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import User
from tickets.models import Conversation, Message
from tickets.selectors import visible_conversations_q
from tickets.services import conversation_reply

# --- Ideas -------------------------------------------------------------------------------------------


def _customer_message(message: Message) -> Message:
    if message.direction != Message.Direction.INBOUND:
        raise ApplicationError("Ideas are logged from the customer's own messages.")
    return message


@transaction.atomic
def idea_create(*, message: Message, actor: User, title: str, quote: str = "") -> Idea:
    """A new idea on the board, with this customer message behind it."""
    bounded_text(title, what="The title", limit=200)
    bounded_text(quote, what="The quote", limit=5000)
    title = (title or "").strip()
    if not title:
        raise ApplicationError("Give the idea a short title.")
    _customer_message(message)
    idea = Idea.objects.create(title=title[:200], created_by=actor)
    idea_attach(idea=idea, message=message, actor=actor, quote=quote)
    return idea


@transaction.atomic
def idea_attach(*, idea: Idea, message: Message, actor: User, quote: str = "") -> IdeaMention:
    """Put one more customer message behind an existing idea (once per message)."""
    bounded_text(quote, what="The quote", limit=5000)
    _customer_message(message)
    quote = (quote or "").strip() or message.body_text.strip()[:500]
    if not quote:
        raise ApplicationError("Quote what the customer said.")
    conversation = message.conversation
    if IdeaMention.objects.filter(idea=idea, message=message).exists():
        raise Conflict("This message is already behind that idea.")
    return IdeaMention.objects.create(
        idea=idea,
        message=message,
        conversation=conversation,
        customer_id=conversation.customer_id,
        quote=quote[:2000],
        logged_by=actor,
    )


@transaction.atomic
def idea_set_status(*, idea: Idea, actor: User, status: str) -> Idea:
    if not actor.is_manager:
        raise ApplicationError("Only managers move ideas on the board.")
    if status not in Idea.Status.values:
        raise ApplicationError("Unknown status.")
    idea = Idea.objects.select_for_update().get(pk=idea.pk)
    if idea.status != status:
        idea.status = status
        idea.status_changed_at = timezone.now()
        idea.save(update_fields=["status", "status_changed_at"])
    return idea


def idea_notify_customers(
    *, idea: Idea, actor: User, body: str, visible_to: User | None = None
) -> tuple[int, list[str]]:
    """Tell every customer behind a shipped idea, once, by a reply on their latest conversation.

    Each reply is a real outbound message (``tickets.services.conversation_reply``), in its own
    transaction; a customer already told is skipped, so a second click sends nothing twice.
    Returns how many were told and the problems of those who could not be (no address...).
    With ``visible_to``, only the customers of conversations that user may open are told (a
    manager never writes into another team's conversations).
    """
    bounded_text(body, what="The message", limit=50000)
    body = (body or "").strip()
    if not body:
        raise ApplicationError("Write the message the customers will get.")
    if idea.status != Idea.Status.SHIPPED:
        raise ApplicationError("Customers are told once the idea has shipped.")
    mentions = idea.mentions.filter(notified_message__isnull=True)
    if visible_to is not None:
        mentions = mentions.filter(visible_conversations_q(visible_to, prefix="conversation__"))
    latest: dict[int, IdeaMention] = {}
    for mention in mentions.select_related("conversation"):
        current = latest.get(mention.customer_id)
        if current is None or mention.created_at >= current.created_at:
            latest[mention.customer_id] = mention
    told = 0
    problems: list[str] = []
    for customer_id, mention in sorted(latest.items()):
        try:
            with transaction.atomic():
                claimed = list(
                    IdeaMention.objects.select_for_update()
                    .filter(idea=idea, customer_id=customer_id, notified_message__isnull=True)
                    .values_list("pk", flat=True)
                )
                if not claimed:
                    continue
                reply = conversation_reply(
                    conversation=mention.conversation, author=actor, body=body
                )
                IdeaMention.objects.filter(pk__in=claimed).update(notified_message=reply)
                told += 1
        except ApplicationError as exc:
            problems.append(f"Conversation #{mention.conversation_id}: {exc.message}")
    return told, problems


# --- Cancellations --------------------------------------------------------------------------------------


def cancellation_reason_save(
    *, actor: User, name: str, is_active: bool = True, position: int = 0, pk: int | None = None
) -> CancellationReason:
    """Create or rename/retire a reason of the managed list (retired reasons stay on old rows)."""
    if not actor.is_manager:
        raise ApplicationError("Only managers edit the cancellation reasons.")
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A reason needs a name.")
    if not 0 <= position <= 1000:
        raise ApplicationError("The order is a number from 0 to 1000.")
    reason = CancellationReason() if pk is None else CancellationReason.objects.get(pk=pk)
    reason.name = name[:100]
    reason.is_active = is_active
    reason.position = position
    try:
        with transaction.atomic():
            reason.save()
    except IntegrityError as exc:
        raise Conflict(f"There is already a reason called {name!r}.") from exc
    return reason


def cancellation_reasons_ensure_default() -> None:
    for index, name in enumerate(DEFAULT_CANCELLATION_REASONS):
        CancellationReason.objects.get_or_create(name=name, defaults={"position": index})


@transaction.atomic
def cancellation_record(
    *,
    conversation: Conversation,
    actor: User,
    reason: CancellationReason,
    outcome: str = Cancellation.Outcome.PENDING,
    note: str = "",
) -> Cancellation:
    """Record (or update) why the customer of this conversation wants to cancel, and the outcome.

    One record per conversation. Moving to *saved* starts the saved-cancellation check-in rule's
    clock (``outcome_at``).
    """
    bounded_text(note, what="The note", limit=5000)
    if outcome not in Cancellation.Outcome.values:
        raise ApplicationError("The outcome is cancelled, saved or pending.")
    if not reason.is_active:
        raise ApplicationError("That reason is retired; pick another.")
    channel = (
        Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
        .order_by("-sent_at", "-id")
        .values_list("channel_kind", flat=True)
        .first()
    ) or ""
    record = Cancellation.objects.select_for_update().filter(conversation=conversation).first()
    now = timezone.now()
    if record is None:
        record = Cancellation(
            conversation=conversation,
            customer_id=conversation.customer_id,
            recorded_by=actor,
            channel_kind=channel,
            team_id=conversation.team_id,
        )
    if record.outcome != outcome:
        record.outcome_at = now if outcome != Cancellation.Outcome.PENDING else None
        record.outcome_by = actor if outcome != Cancellation.Outcome.PENDING else None
    record.reason = reason
    record.outcome = outcome
    record.note = (note or "").strip()
    record.save()
    return record
