"""Pages of the quality app: QA reviews, calibration, ideas, cancellations, check-ins and the pulse.

Each POST validates its shape, calls one service, and redirects; a refused request re-renders the
page with the reason and a 4xx status, having stored nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from quality import selectors as sel
from quality import services
from quality.forms import (
    CalibrationForm,
    CancellationForm,
    CancellationReasonForm,
    CheckInActForm,
    CheckInRuleForm,
    IdeaLogForm,
    IdeaNotifyForm,
    IdeaStatusForm,
    PulseForm,
    ReviewReplaceForm,
    ReviewResponseForm,
    ReviewSubmitForm,
    RubricForm,
    parsed,
)
from quality.models import Cancellation, CancellationReason, CheckInRule, Criterion, Idea, QAReview
from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.models import User
from tickets.selectors import conversation_get_for_user, message_get_for_user


def _refused(
    request: StaffRequest, exc: ApplicationError, page: Callable[..., HttpResponse], **kwargs: Any
) -> HttpResponse:
    """Show the page again with the reason, answering the refused request's 4xx status."""
    messages.error(request, exc.message)
    response = page(request, **kwargs)
    response.status_code = exc.status
    return response


def _manager(request: StaffRequest) -> None:
    if not request.user.is_manager:
        raise PermissionDenied("Managers only.")


def _date(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


# --- QA ---------------------------------------------------------------------------------------------


@login_required
@require_GET
def qa_home(request: StaffRequest) -> HttpResponse:
    user = request.user
    sample, sample_reviews = sel.qa_sample_reviews(user=user) if user.is_manager else (None, [])
    return render(
        request,
        "quality/home.html",
        {
            "to_do": list(sel.qa_review_list_to_do(user=user)),
            "received": list(sel.qa_review_list_for_agent(user=user)),
            "sample": sample,
            "sample_reviews": sample_reviews,
        },
    )


def _review_page(request: StaffRequest, pk: int) -> HttpResponse:
    review = sel.qa_review_get_for_user(user=request.user, pk=pk)
    answers = sel.qa_review_answers(review=review) if review.is_submitted else []
    criteria = list(review.rubric.criteria.all()) if not review.is_submitted else []
    return render(
        request,
        "quality/review.html",
        {
            "review": review,
            "timeline": sel.qa_review_timeline(review=review),
            "answers": answers,
            "criteria": criteria,
            "second": sel.qa_second_review(review=review),
            "can_score": review.state == QAReview.State.PENDING
            and review.reviewer_id == request.user.pk,
            "can_respond": review.state == QAReview.State.SUBMITTED
            and review.agent_id == request.user.pk
            and review.kind != QAReview.Kind.CALIBRATION,
            "can_dispute": review.kind == QAReview.Kind.SAMPLE,
            "can_replace": review.state == QAReview.State.PENDING
            and review.kind == QAReview.Kind.SAMPLE
            and (review.reviewer_id == request.user.pk or request.user.is_manager),
        },
    )


@login_required
@require_GET
def qa_review(request: StaffRequest, pk: int) -> HttpResponse:
    return _review_page(request, pk)


@login_required
@require_POST
def qa_review_submit(request: StaffRequest, pk: int) -> HttpResponse:
    review = sel.qa_review_get_for_user(user=request.user, pk=pk)
    form = ReviewSubmitForm(request.POST, criteria=review.rubric.criteria.all())
    values = form.values()
    try:
        services.qa_review_submit(
            review=review,
            reviewer=request.user,
            values=values,
            comment=form.cleaned_data["comment"],
        )
    except ApplicationError as exc:
        return _refused(request, exc, _review_page, pk=pk)
    messages.success(request, "Review submitted; the agent has been told.")
    if review.calibration_id:
        return redirect("quality:qa_calibration", review.calibration_id)
    return redirect("quality:qa_review", pk)


@login_required
@require_POST
def qa_review_respond(request: StaffRequest, pk: int) -> HttpResponse:
    review = sel.qa_review_get_for_user(user=request.user, pk=pk)
    data = parsed(ReviewResponseForm, request.POST)
    action, comment = data["action"], data["comment"]
    try:
        if action == "acknowledge":
            services.qa_review_acknowledge(review=review, agent=request.user, comment=comment)
            messages.success(request, "Review acknowledged.")
        elif action == "dispute":
            second = services.qa_review_dispute(review=review, agent=request.user, comment=comment)
            messages.success(request, f"Dispute sent: {second.reviewer} will give a second review.")
        else:
            raise ApplicationError("Acknowledge or dispute the review.")
    except ApplicationError as exc:
        return _refused(request, exc, _review_page, pk=pk)
    return redirect("quality:qa_review", pk)


@login_required
@require_POST
def qa_review_replace(request: StaffRequest, pk: int) -> HttpResponse:
    review = sel.qa_review_get_for_user(user=request.user, pk=pk)
    try:
        replacement = services.qa_review_replace(
            review=review,
            actor=request.user,
            reason=parsed(ReviewReplaceForm, request.POST)["reason"],
        )
    except ApplicationError as exc:
        return _refused(request, exc, _review_page, pk=pk)
    messages.success(
        request, f"Replaced by conversation #{replacement.conversation_id}; the reason is logged."
    )
    return redirect("quality:qa_review", replacement.pk)


def _rubric_page(request: StaffRequest) -> HttpResponse:
    _manager(request)
    rubric = services.rubric_ensure_default()
    criteria = list(rubric.criteria.all())
    return render(
        request,
        "quality/rubric.html",
        {
            "rubric": rubric,
            "criteria": criteria,
            "blank_rows": range(len(criteria), len(criteria) + 2),
            "scales": Criterion.Scale.choices,
        },
    )


@login_required
def qa_rubric(request: StaffRequest) -> HttpResponse:
    if request.method != "POST":
        return _rubric_page(request)
    _manager(request)
    rows = RubricForm(request.POST).criteria()
    try:
        rubric = services.rubric_publish(criteria=rows, actor=request.user)
    except ApplicationError as exc:
        return _refused(request, exc, _rubric_page)
    messages.success(request, f"Published version {rubric.version}; earlier reviews keep theirs.")
    return redirect("quality:qa_rubric")


def _calibrations_page(request: StaffRequest) -> HttpResponse:
    return render(
        request,
        "quality/calibrations.html",
        {
            "calibrations": list(sel.calibration_list(user=request.user)),
            "staff": list(
                User.objects.filter(is_active=True, role__in=["manager", "agent"]).order_by("email")
            )
            if request.user.is_manager
            else [],
        },
    )


@login_required
def qa_calibrations(request: StaffRequest) -> HttpResponse:
    if request.method != "POST":
        return _calibrations_page(request)
    _manager(request)
    data = parsed(CalibrationForm, request.POST)
    try:
        conversation_id = data["conversation"]
        if conversation_id is None:
            raise ApplicationError("Give the number of a solved conversation.")
        try:
            conversation = conversation_get_for_user(user=request.user, pk=conversation_id)
        except Http404 as exc:
            raise ApplicationError("No such conversation.") from exc
        ids = data["reviewers"]
        calibration = services.calibration_create(
            conversation=conversation,
            actor=request.user,
            reviewers=User.objects.filter(pk__in=ids, is_active=True),
        )
    except ApplicationError as exc:
        return _refused(request, exc, _calibrations_page)
    return redirect("quality:qa_calibration", calibration.pk)


@login_required
@require_GET
def qa_calibration(request: StaffRequest, pk: int) -> HttpResponse:
    calibration = sel.calibration_get_for_user(user=request.user, pk=pk)
    spread = sel.calibration_spread(calibration=calibration)
    mine = next((r for r in spread["reviews"] if r.reviewer_id == request.user.pk), None)
    # Reviewers see the others' scores only after submitting their own (no anchoring).
    reveal = request.user.is_manager or (mine is not None and mine.is_submitted)
    return render(
        request,
        "quality/calibration.html",
        {"calibration": calibration, "mine": mine, "reveal": reveal, **spread},
    )


@login_required
@require_GET
def qa_disagreements(request: StaffRequest) -> HttpResponse:
    _manager(request)
    from django.conf import settings

    return render(
        request,
        "quality/disagreements.html",
        {**sel.qa_disagreements(user=request.user), "pass_score": settings.QA_PASS_SCORE},
    )


# --- Ideas -------------------------------------------------------------------------------------------


@login_required
@require_GET
def ideas(request: StaffRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    q = request.GET.get("q", "").strip()[:100]
    items = list(sel.idea_list(status=status, q=q, user=request.user)[:200])
    credits = sel.idea_credits(ideas=items)
    for idea in items:
        idea.credited = credits.get(idea.pk, [])
    return render(
        request,
        "quality/ideas.html",
        {"ideas": items, "status": status, "q": q, "statuses": Idea.Status.choices},
    )


def _idea_page(request: StaffRequest, pk: int) -> HttpResponse:
    idea = sel.idea_get(pk=pk, user=request.user)
    mentions = sel.idea_mentions(idea=idea, user=request.user)
    return render(
        request,
        "quality/idea.html",
        {
            "idea": idea,
            "mentions": mentions,
            "customers": len({m.customer_id for m in mentions}),
            "to_notify": len({m.customer_id for m in mentions if m.notified_message_id is None}),
            "statuses": Idea.Status.choices,
        },
    )


@login_required
@require_GET
def idea_detail(request: StaffRequest, pk: int) -> HttpResponse:
    return _idea_page(request, pk)


@login_required
@require_POST
def idea_status(request: StaffRequest, pk: int) -> HttpResponse:
    idea = sel.idea_get(pk=pk, user=request.user)
    try:
        services.idea_set_status(
            idea=idea, actor=request.user, status=parsed(IdeaStatusForm, request.POST)["status"]
        )
    except ApplicationError as exc:
        return _refused(request, exc, _idea_page, pk=pk)
    return redirect("quality:idea_detail", pk)


@login_required
@require_POST
def idea_notify(request: StaffRequest, pk: int) -> HttpResponse:
    idea = sel.idea_get(pk=pk, user=request.user)
    try:
        _manager(request)
        told, problems = services.idea_notify_customers(
            idea=idea,
            actor=request.user,
            body=parsed(IdeaNotifyForm, request.POST)["body"],
            visible_to=request.user,
        )
    except ApplicationError as exc:
        return _refused(request, exc, _idea_page, pk=pk)
    messages.success(request, f"Told {told} customer{'s' if told != 1 else ''}.")
    for problem in problems:
        messages.warning(request, problem)
    return redirect("quality:idea_detail", pk)


def _idea_log_page(request: StaffRequest, message_id: int) -> HttpResponse:
    message = message_get_for_user(user=request.user, pk=message_id)
    q = request.GET.get("q", "").strip()[:100]
    matches = list(sel.idea_list(q=q, user=request.user)[:10]) if q else []
    context = {"message": message, "q": q, "matches": matches}
    if request.htmx and request.GET.get("partial") == "matches":
        return render(request, "quality/idea_log.html#matches", context)
    context["open_ideas"] = list(
        sel.idea_list(user=request.user).filter(status__in=Idea.OPEN_STATUSES)[:8]
    )
    return render(request, "quality/idea_log.html", context)


@login_required
def idea_log(request: StaffRequest, message_id: int) -> HttpResponse:
    """Log a customer idea from one message: a new idea, or this message behind an existing one."""
    if request.method != "POST":
        return _idea_log_page(request, message_id)
    message = message_get_for_user(user=request.user, pk=message_id)
    data = parsed(IdeaLogForm, request.POST)
    quote = data["quote"]
    try:
        idea_id = data["idea"]
        if idea_id:
            try:
                idea = sel.idea_get(pk=idea_id, user=request.user)
            except Http404 as exc:
                raise ApplicationError("That idea no longer exists.") from exc
            services.idea_attach(idea=idea, message=message, actor=request.user, quote=quote)
            messages.success(request, f"Added this customer to “{idea.title}”.")
        else:
            idea = services.idea_create(
                message=message,
                actor=request.user,
                title=data["title"],
                quote=quote,
            )
            messages.success(request, f"Logged the idea “{idea.title}”.")
    except ApplicationError as exc:
        return _refused(request, exc, _idea_log_page, message_id=message_id)
    return redirect("quality:idea_detail", idea.pk)


# --- Cancellations ------------------------------------------------------------------------------------


def _cancellations_page(request: StaffRequest) -> HttpResponse:
    _manager(request)
    today = timezone.localdate()
    start = _date(request.GET.get("from"), today.replace(day=1) - timedelta(days=150))
    end = _date(request.GET.get("to"), today + timedelta(days=1))
    bucket = "week" if request.GET.get("bucket") == "week" else "month"
    return render(
        request,
        "quality/cancellations.html",
        {
            "report": sel.cancellation_report(
                start=start, end=end, bucket=bucket, user=request.user
            ),
            "start": start,
            "end": end,
            "bucket": bucket,
            "reasons": list(CancellationReason.objects.all()),
        },
    )


@login_required
@require_GET
def cancellations(request: StaffRequest) -> HttpResponse:
    return _cancellations_page(request)


@login_required
@require_POST
def cancellation_reasons(request: StaffRequest) -> HttpResponse:
    _manager(request)
    data = parsed(CancellationReasonForm, request.POST)
    try:
        services.cancellation_reason_save(
            actor=request.user,
            pk=data["pk"],
            name=data["name"],
            is_active=data["is_active"],
            position=data["position"] or 0,
        )
    except CancellationReason.DoesNotExist as exc:
        raise Http404("No such reason.") from exc
    except ApplicationError as exc:
        return _refused(request, exc, _cancellations_page)
    messages.success(request, "Reasons saved.")
    return redirect("quality:cancellations")


def _cancellation_page(request: StaffRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_get_for_user(user=request.user, pk=conversation_id)
    return render(
        request,
        "quality/cancellation.html",
        {
            "conversation": conversation,
            "record": sel.cancellation_for_conversation(conversation_id=conversation.pk),
            "reasons": list(CancellationReason.objects.filter(is_active=True)),
            "outcomes": Cancellation.Outcome.choices,
        },
    )


@login_required
def cancellation_record(request: StaffRequest, conversation_id: int) -> HttpResponse:
    if request.method != "POST":
        return _cancellation_page(request, conversation_id)
    conversation = conversation_get_for_user(user=request.user, pk=conversation_id)
    data = parsed(CancellationForm, request.POST)
    reason = CancellationReason.objects.filter(pk=data["reason"] or 0).first()
    try:
        if reason is None:
            raise ApplicationError("Pick the customer's reason.")
        services.cancellation_record(
            conversation=conversation,
            actor=request.user,
            reason=reason,
            outcome=data["outcome"],
            note=data["note"],
        )
    except ApplicationError as exc:
        return _refused(request, exc, _cancellation_page, conversation_id=conversation_id)
    messages.success(request, "Cancellation reason recorded.")
    return redirect("quality:cancellation_record", conversation.pk)


# --- Check-ins ------------------------------------------------------------------------------------------


def _checkins_page(request: StaffRequest) -> HttpResponse:
    state = request.GET.get("state", "due")
    if state not in ("due", "sent", "dismissed"):
        state = "due"
    return render(
        request,
        "quality/checkins.html",
        {
            "checkins": list(sel.checkin_list_for_user(user=request.user, state=state)[:100]),
            "state": state,
            "rules": list(CheckInRule.objects.all()) if request.user.is_manager else [],
        },
    )


@login_required
@require_GET
def checkins(request: StaffRequest) -> HttpResponse:
    return _checkins_page(request)


@login_required
@require_POST
def checkin_act(request: StaffRequest, pk: int) -> HttpResponse:
    checkin = sel.checkin_get_for_user(user=request.user, pk=pk)
    data = parsed(CheckInActForm, request.POST)
    try:
        if data["action"] == "dismiss":
            services.checkin_dismiss(checkin=checkin, actor=request.user)
            messages.success(request, "Check-in dismissed.")
        else:
            services.checkin_send(checkin=checkin, actor=request.user, body=data["body"])
            messages.success(request, f"Check-in sent on conversation #{checkin.conversation_id}.")
    except ApplicationError as exc:
        return _refused(request, exc, _checkins_page)
    return redirect("quality:checkins")


@login_required
@require_POST
def checkin_rule(request: StaffRequest, pk: int) -> HttpResponse:
    _manager(request)
    rule = CheckInRule.objects.filter(pk=pk).first()
    if rule is None:
        raise Http404("No such rule.")
    data = parsed(CheckInRuleForm, request.POST)
    try:
        services.checkin_rule_update(
            actor=request.user,
            rule=rule,
            days_after=data["days_after"] or 0,
            is_active=data["is_active"],
        )
    except ApplicationError as exc:
        return _refused(request, exc, _checkins_page)
    return redirect(reverse("quality:checkins"))


# --- Pulse ----------------------------------------------------------------------------------------------


def _pulse_page(request: StaffRequest) -> HttpResponse:
    week = sel.pulse_current_week()
    closed = sel.pulse_last_closed_week()
    return render(
        request,
        "quality/pulse.html",
        {
            "week": week,
            "answered": sel.pulse_has_answered(user=request.user, week=week) if week else False,
            "closed_week": closed,
            "summary": sel.pulse_summary(week=closed) if closed else [],
            "min_answers": services.PULSE_MIN_ANSWERS,
        },
    )


@login_required
def pulse(request: StaffRequest) -> HttpResponse:
    if request.method != "POST":
        return _pulse_page(request)
    week = sel.pulse_current_week()
    if week is None:
        raise Http404("No pulse is open.")
    data = parsed(PulseForm, request.POST)
    try:
        rating = data["week_rating"]
        if rating is None:
            raise ApplicationError("Rate your week from 1 to 5.")
        services.pulse_answer(
            user=request.user,
            week=week,
            week_rating=rating,
            has_what_needed=data["has_what_needed"],
            comment=data["comment"],
        )
    except ApplicationError as exc:
        return _refused(request, exc, _pulse_page)
    messages.success(request, "Thank you. Your answer is anonymous.")
    return redirect("quality:pulse")
