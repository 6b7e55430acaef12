"""What the quality app adds to other apps' pages, through ``supportdesk.extensions`` slots."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from supportdesk import extensions
from supportdesk.http import StaffRequest


def conversation_sidebar(
    request: StaffRequest, *, conversation: Any, customer: Any = None, **_: Any
) -> str:
    """The conversation's QA reviews, the customer's open ideas, the cancellation form. 4 queries."""
    from quality.models import CancellationReason, QAReview
    from quality.selectors import (
        cancellation_for_conversation,
        ideas_for_customer,
        visible_review_q,
    )

    user = request.user
    reviews = list(
        QAReview.objects.filter(visible_review_q(user), conversation_id=conversation.pk)
        .exclude(state=QAReview.State.REPLACED)
        .select_related("reviewer")
        .order_by("-created_at")[:5]
    )
    customer_id = customer.pk if customer is not None else conversation.customer_id
    return render_to_string(
        "quality/panel_sidebar.html",
        {
            "conversation": conversation,
            "reviews": reviews,
            "ideas": ideas_for_customer(customer_id=customer_id, user=user),
            "cancellation": cancellation_for_conversation(conversation_id=conversation.pk),
            "reasons": list(CancellationReason.objects.filter(is_active=True)),
        },
        request=request,
    )


def customer_page(request: StaffRequest, *, customer: Any, **_: Any) -> str:
    """The customer's open ideas and cancellation requests (the customer page). 2 queries,
    both through conversations the viewer may open."""
    from quality.selectors import cancellations_for_customer, ideas_for_customer

    user = request.user
    return render_to_string(
        "quality/panel_customer.html",
        {
            "customer": customer,
            "ideas": ideas_for_customer(customer_id=customer.pk, user=user),
            "cancellations": cancellations_for_customer(customer_id=customer.pk, user=user),
        },
        request=request,
    )


def message_actions(request: HttpRequest, *, conversation: Any, message: Any, **_: Any) -> str:
    """ "Log idea" on a customer's message. No query: a URL only."""
    if getattr(message, "direction", "") != "inbound":
        return ""
    return format_html(
        '<a class="qa-action" href="{}">Log idea</a>',
        reverse("quality:idea_log", args=[message.pk]),
    )


def agent_home(request: HttpRequest, *, user: Any, **_: Any) -> str:
    """Reviews to answer or to give, due check-ins, and this week's pulse if not answered.
    4 queries: the two review lists, the check-ins, the pulse week with the user's answer."""
    from quality.selectors import agent_home_checkins, agent_home_reviews, pulse_open_for_user

    to_answer, to_do = agent_home_reviews(user=user)
    return render_to_string(  # "" when there is nothing for the agent
        "quality/panel_home.html",
        {
            "to_answer": to_answer,
            "to_do": to_do,
            "checkins": agent_home_checkins(user=user),
            "pulse_open": pulse_open_for_user(user=user),
        },
        request=request,
    ).strip()


def register() -> None:
    extensions.register_nav("QA", "quality:qa_home", order=40)
    extensions.register_nav("Ideas", "quality:ideas", order=41)
    extensions.register_nav("Check-ins", "quality:checkins", order=42)
    extensions.register_nav("Pulse", "quality:pulse", order=43, more=True)
    extensions.register_nav(
        "Cancellations", "quality:cancellations", roles={"manager", "admin"}, order=44, more=True
    )
    extensions.register_panel("conversation.sidebar", conversation_sidebar)
    extensions.register_panel("customer.page", customer_page)
    extensions.register_panel("message.actions", message_actions)
    extensions.register_panel("agent.home", agent_home)

    from quality.seed import seed

    extensions.register_seeder("qa", seed)

    from quality.services import privacy

    extensions.register_eraser("quality", privacy.quality_erase)
    extensions.register_exporter("quality", privacy.quality_export)
