"""What surveys adds to the pages of lower apps (supportdesk.extensions slots).

Each panel runs a constant number of queries whatever the page shows.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from supportdesk.http import StaffRequest
from surveys import selectors


def conversation_sidebar(request: StaffRequest, **context: Any) -> str:
    """The customer's latest CSAT and comment, and this conversation's survey and answer."""
    conversation = context.get("conversation")
    customer = context.get("customer") or getattr(conversation, "customer", None)
    if conversation is None:
        return ""
    survey = selectors.survey_latest_for_conversation(conversation_id=conversation.pk)
    response = next(iter(survey.responses.all()), None) if survey is not None else None
    latest = (
        selectors.latest_response_for_customer(user=request.user, customer_id=customer.pk)
        if customer is not None
        else None
    )
    return render_to_string(
        "surveys/panels/conversation_sidebar.html",
        {"survey": survey, "response": response, "latest": latest, "conversation": conversation},
        request=request,
    )


def agent_home(request: HttpRequest, **context: Any) -> str:
    """The agent's own recent shout-outs and comments from customers (two queries)."""
    user = context.get("user") or getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    shout_outs, comments = selectors.feedback_for_agent_home(agent_id=user.pk, limit=5)
    return render_to_string(
        "surveys/panels/agent_home.html",
        {"shout_outs": shout_outs, "comments": comments},
        request=request,
    )
