"""The surveys app's part of erasing and exporting a customer (``supportdesk.extensions``).

Erasing keeps every answer's figures (resolved, contacts, CSAT, NPS, shout-out, dates) and removes
the words: the comment (replaced by "[erased]", since whether there was one is a figure),
follow-up notes, the address a survey went to, and unsubscribes (kept by
address, they would find the person again).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from supportdesk.extensions import PrivacyScope
from supportdesk.privacy import ERASED, personal_text_scrub
from surveys.models import FollowUp, Survey, SurveyResponse, SurveyUnsubscribe


def _surveys(scope: PrivacyScope) -> Any:
    return Survey.objects.filter(
        Q(conversation_id__in=scope.conversation_ids) | Q(customer_id__in=scope.customer_ids)
    )


def surveys_erase(scope: PrivacyScope) -> int:
    """Remove the customer's words from their surveys; runs inside the erasure's transaction."""
    surveys = _surveys(scope)
    responses = SurveyResponse.objects.filter(survey__in=surveys)
    comments = list(responses.exclude(comment="").values_list("comment", flat=True))
    notes = list(
        FollowUp.objects.filter(survey__in=surveys).exclude(note="").values_list("note", flat=True)
    )
    emails = list(surveys.exclude(email="").values_list("email", flat=True))
    # "[erased]", not "": that there was a comment is a figure (comment_rate), its words are not.
    changed: int = responses.exclude(comment="").update(comment=ERASED)
    changed += FollowUp.objects.filter(survey__in=surveys).exclude(note="").update(note=ERASED)
    changed += surveys.exclude(email="", message_id="").update(email="", message_id="")
    if scope.customer_ids:
        changed += SurveyUnsubscribe.objects.filter(customer_id__in=scope.customer_ids).delete()[0]
    # Notifications quoted the comments ("Their comment: ..."), the audit log may name the notes.
    changed += personal_text_scrub(needles=[*comments, *notes], addresses=emails)
    return changed


def surveys_export(scope: PrivacyScope) -> dict[str, Any]:
    """The customer's surveys and answers, for a subject-access export."""
    surveys = _surveys(scope).prefetch_related("responses").order_by("solved_at", "pk")
    return {
        "surveys": [
            {
                "id": survey.pk,
                "conversation": survey.conversation_id,
                "solved_at": survey.solved_at,
                "status": survey.status,
                "email": survey.email,
                "sent_at": survey.sent_at,
                "answers": [
                    {
                        "resolved": r.resolved,
                        "contacts": r.contacts_declared,
                        "csat": r.csat,
                        "nps": r.nps,
                        "comment": r.comment,
                        "shout_out": r.shout_out,
                        "answered_at": r.answered_at,
                    }
                    for r in survey.responses.all()
                ],
            }
            for survey in surveys
        ],
        "unsubscribes": [
            {"email": u.email, "created_at": u.created_at}
            for u in SurveyUnsubscribe.objects.filter(customer_id__in=scope.customer_ids)
        ],
    }
