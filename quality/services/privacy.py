"""The quality app's part of erasing and exporting a customer (``supportdesk.extensions``).

Scores, states, ideas and cancellation reasons and outcomes stay (they are figures); the words
go: an idea mention's quote, a cancellation's note, and any place a QA comment quotes the
customer (their name, handles or message text).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from quality.models import Cancellation, IdeaMention, QAReview
from supportdesk.extensions import PrivacyScope
from supportdesk.privacy import ERASED, personal_text_scrub, text_scrub


def quality_erase(scope: PrivacyScope) -> int:
    """Remove the customer's words from QA, ideas and cancellations (inside the erasure)."""
    mentions = IdeaMention.objects.filter(
        Q(customer_id__in=scope.customer_ids) | Q(conversation_id__in=scope.conversation_ids)
    )
    cancellations = Cancellation.objects.filter(
        Q(customer_id__in=scope.customer_ids) | Q(conversation_id__in=scope.conversation_ids)
    )
    quoted = [
        *mentions.values_list("quote", flat=True),
        *cancellations.exclude(note="").values_list("note", flat=True),
    ]
    changed = mentions.exclude(quote="").update(quote=ERASED)
    changed += cancellations.exclude(note="").update(note=ERASED)
    needles = [*scope.needles, *quoted]
    for review in QAReview.objects.filter(conversation_id__in=scope.conversation_ids):
        fields = {
            "comment": text_scrub(review.comment, needles),
            "agent_comment": text_scrub(review.agent_comment, needles),
            "replaced_reason": text_scrub(review.replaced_reason, needles),
        }
        if any(getattr(review, f) != v for f, v in fields.items()):
            QAReview.objects.filter(pk=review.pk).update(**fields)
            changed += 1
    changed += personal_text_scrub(needles=quoted)
    return changed


def quality_export(scope: PrivacyScope) -> dict[str, Any]:
    """What the quality app holds about the customer: idea mentions and cancellations."""
    return {
        "idea_mentions": [
            {
                "idea": m.idea.title,
                "conversation": m.conversation_id,
                "message": m.message_id,
                "quote": m.quote,
                "created_at": m.created_at,
            }
            for m in IdeaMention.objects.filter(customer_id__in=scope.customer_ids)
            .select_related("idea")
            .order_by("created_at", "pk")
        ],
        "cancellations": [
            {
                "conversation": c.conversation_id,
                "reason": c.reason.name,
                "note": c.note,
                "outcome": c.outcome,
                "created_at": c.created_at,
            }
            for c in Cancellation.objects.filter(customer_id__in=scope.customer_ids)
            .select_related("reason")
            .order_by("created_at", "pk")
        ],
    }
