"""Customer pages: the directory, a customer's page, the new-customer form and the screen pop;
starting a conversation and logging a call from the workspace.

Views parse with a form (``tickets.customer_forms``), call one service or selector and redirect or
render; refusals (``ApplicationError``) are shown with the status they carry.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk import extensions
from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.models import Team
from tickets import selectors, services
from tickets.customer_forms import (
    CallLogForm,
    ConversationStartForm,
    CustomerCreateForm,
    CustomerEditForm,
    CustomerSearchForm,
    LookupForm,
)
from tickets.forms import LinkIdentityForm
from tickets.models import Channel, Conversation, Customer
from tickets.views import OUTCOME_LABELS, conversation_refused

CUSTOMERS_PER_PAGE = 25


def _own_team(request: StaffRequest, team_id: int | None) -> Team | None:
    if team_id is None:
        return None
    team = {t.pk: t for t in selectors.team_list_for_user(user=request.user)}.get(team_id)
    if team is None:
        raise ApplicationError(services.TEAM_NOT_YOURS)
    return team


# --- Directory ---------------------------------------------------------------------------------------


@login_required
@require_GET
def customer_list(request: StaffRequest) -> HttpResponse:
    """``/customers/``: search by name, organisation or any identity; 25 a page."""
    form = CustomerSearchForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Invalid search: " + form.errors.as_text())
    query = form.cleaned_data["q"] or ""
    paginator = Paginator(
        selectors.customer_list_for_user(user=request.user, query=query), CUSTOMERS_PER_PAGE
    )
    page = paginator.get_page(form.cleaned_data["page"] or 1)
    return render(
        request,
        "tickets/customers.html",
        {"form": form, "query": query, "page": page, "q_param": urlencode({"q": query})},
    )


# --- Screen pop ---------------------------------------------------------------------------------------


@login_required
@require_GET
def lookup(request: StaffRequest) -> HttpResponse:
    """``/lookup/?phone=<any format>`` or ``?email=``: the customer's page, or the new-customer
    form filled in. A customer the caller may not open answers like an unknown one."""
    form = LookupForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("Give ?phone= or ?email= to look a customer up.")
    phone, email = form.cleaned_data["phone"].strip(), form.cleaned_data["email"].strip()
    customer = selectors.customer_by_lookup(phone=phone, email=email)
    if customer is not None:
        with contextlib.suppress(Http404):
            selectors.customer_get_for_user(user=request.user, pk=customer.pk)
            return redirect("workspace:customer", pk=customer.pk)
    prefill = {key: value for key, value in (("phone", phone), ("email", email)) if value}
    return redirect(f"{reverse('workspace:customer-new')}?{urlencode(prefill)}")


@login_required
@require_http_methods(["GET", "POST"])
def customer_new(request: StaffRequest) -> HttpResponse:
    """A new customer with their handles (the screen pop's form when nobody has the number)."""
    if request.method == "GET":
        initial = {key: request.GET.get(key, "")[:320] for key in ("name", "email", "phone")}
        form = CustomerCreateForm(initial=initial)
        return render(request, "tickets/customer_new.html", {"form": form})
    form = CustomerCreateForm(request.POST)
    if not form.is_valid():
        return render(request, "tickets/customer_new.html", {"form": form}, status=400)
    data = form.cleaned_data
    handles = [(kind, data[kind]) for kind in ("email", "phone") if data[kind]]
    try:
        organisation = (
            services.organisation_get_or_create(name=data["organisation"])
            if data["organisation"]
            else None
        )
        customer = services.customer_create(
            actor=request.user,
            name=data["name"],
            handles=handles,
            organisation=organisation,
            notes=data["notes"],
        )
    except services.HandleTaken as exc:
        if selectors.customer_visible_to(user=request.user, pk=exc.holder_id):
            messages.info(request, "A customer already has this handle: here they are.")
            return redirect("workspace:customer", pk=exc.holder_id)
        form.add_error(
            None,
            "This handle belongs to a customer of a team you are not in. Start a conversation "
            "with it (New conversation) to work with them in your team.",
        )
        return render(request, "tickets/customer_new.html", {"form": form}, status=exc.status)
    except ApplicationError as exc:
        form.add_error(None, str(exc))
        return render(request, "tickets/customer_new.html", {"form": form}, status=exc.status)
    messages.success(request, f"Customer {customer} created.")
    return redirect("workspace:customer", pk=customer.pk)


# --- A customer's page --------------------------------------------------------------------------------


def _customer_context(request: StaffRequest, customer: Customer) -> dict[str, Any]:
    data = selectors.customer_page_data(user=request.user, customer=customer)
    outcomes = extensions.annotate("conversation.outcome", [c.pk for c in data.conversations])
    for conversation in data.conversations:
        conversation.outcome = outcomes.get(conversation.pk)  # type: ignore[attr-defined]
        conversation.outcome_label = OUTCOME_LABELS.get(  # type: ignore[attr-defined]
            outcomes.get(conversation.pk) or "", "—"
        )
    conversations = list(data.conversations)
    open_mine = [c for c in conversations if c.is_active and getattr(c, "visible", False)]
    elsewhere = sum(1 for c in conversations if not getattr(c, "visible", False))
    return {
        "customer": customer,
        "identities": data.identities,
        "conversations": conversations,
        "conversation_total": data.conversation_total,
        "open_conversations": open_mine,
        "elsewhere_count": elsewhere,
        "merges": data.merges,
        "teams": selectors.team_list_for_user(user=request.user),
        "link_form": LinkIdentityForm(),
        "edit_form": CustomerEditForm(
            initial={
                "name": customer.name,
                "language": customer.language,
                "organisation": customer.organisation.name if customer.organisation else "",
                "notes": customer.notes,
            }
        ),
        "call_form": CallLogForm(initial={"started_at": timezone.localtime()}),
        "organisations": selectors.organisation_list(),
    }


@login_required
@require_GET
def customer_detail(request: StaffRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    if customer.merged_into_id is not None:
        messages.info(request, f"{customer} was merged into this customer.")
        return redirect("workspace:customer", pk=customer.merged_into_id)
    return render(request, "tickets/customer.html", _customer_context(request, customer))


def customer_refused(
    request: StaffRequest, customer: Customer, error: str, *, status: int
) -> HttpResponse:
    """The customer page again with the reason of a refusal, with the refusal's status."""
    messages.error(request, error)
    context = _customer_context(request, customer)
    return render(request, "tickets/customer.html", context, status=status)


@login_required
@require_POST
def customer_edit(request: StaffRequest, pk: int) -> HttpResponse:
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    form = CustomerEditForm(request.POST)
    if not form.is_valid():
        return customer_refused(request, customer, form.errors.as_text(), status=400)
    # Only the fields the form sent change (an API-like post of one field keeps the others).
    data = {key: value for key, value in form.cleaned_data.items() if key in request.POST}
    try:
        if "organisation" in data:
            data["organisation"] = (
                services.organisation_get_or_create(name=data["organisation"])
                if data["organisation"]
                else None
            )
        services.customer_update(customer=customer, actor=request.user, **data)
    except ApplicationError as exc:
        return customer_refused(request, customer, str(exc), status=exc.status)
    messages.success(request, "Customer saved.")
    return redirect("workspace:customer", pk=customer.pk)


def _admin_only(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins may export or erase a customer's data.")


@login_required
@require_POST
def customer_erase(request: StaffRequest, pk: int) -> HttpResponse:
    """Erase the customer's personal data (admins, after typing ``ERASE <id>``)."""
    _admin_only(request)
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    if request.POST.get("confirm", "").strip() != f"ERASE {customer.pk}":
        return customer_refused(
            request, customer, f"Type ERASE {customer.pk} to confirm the erasure.", status=400
        )
    try:
        details = services.customer_erase(customer=customer, actor=request.user)
    except ApplicationError as exc:
        return customer_refused(request, customer, str(exc), status=exc.status)
    messages.success(
        request,
        f"Customer #{customer.pk} erased: {details['conversations']} conversations kept as "
        "anonymous shells, every figure unchanged.",
    )
    return redirect("workspace:customer", pk=customer.pk)


@login_required
@require_GET
def customer_export(request: StaffRequest, pk: int) -> HttpResponse:
    """Download everything held about the customer: JSON, or a zip with the files (?zip=1)."""
    _admin_only(request)
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    try:
        content_type, body = services.customer_export(
            customer=customer, actor=request.user, with_files=request.GET.get("zip") == "1"
        )
    except ApplicationError as exc:
        return customer_refused(request, customer, str(exc), status=exc.status)
    response = HttpResponse(body, content_type=content_type)
    extension = "zip" if content_type == "application/zip" else "json"
    response["Content-Disposition"] = (
        f'attachment; filename="customer-{customer.pk}-export.{extension}"'
    )
    return response


@login_required
@require_POST
def customer_call(request: StaffRequest, pk: int) -> HttpResponse:
    """Log a call from the customer page: on one of their open conversations, or a new one."""
    customer = selectors.customer_get_for_user(user=request.user, pk=pk)
    form = CallLogForm(request.POST)
    if not form.is_valid():
        return customer_refused(request, customer, form.errors.as_text(), status=400)
    data = form.cleaned_data
    conversation: Conversation | None = None
    if data["conversation"]:
        conversation = selectors.conversation_get_for_user(
            user=request.user, pk=data["conversation"]
        )
        if conversation.customer_id != customer.pk:
            raise Http404("No such conversation of this customer.")
    try:
        call = services.call_log(
            conversation=conversation,
            customer=customer,
            team=_own_team(request, data["team"]),
            actor=request.user,
            direction=data["direction"],
            started_at=data["started_at"],
            wait_seconds=data["wait_seconds"],
            talk_seconds=data["talk_seconds"],
            hold_seconds=data["hold_seconds"],
            ended_by=data["ended_by"],
            notes=data["notes"],
        )
    except ApplicationError as exc:
        return customer_refused(request, customer, str(exc), status=exc.status)
    messages.success(request, "Call logged.")
    return redirect("workspace:conversation", pk=call.message.conversation_id)


@login_required
@require_POST
def conversation_call(request: StaffRequest, pk: int) -> HttpResponse:
    """Log a call from the conversation page."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = CallLogForm(request.POST)
    if not form.is_valid():
        return conversation_refused(request, pk, ApplicationError(form.errors.as_text()))
    data = form.cleaned_data
    try:
        call = services.call_log(
            conversation=conversation,
            actor=request.user,
            direction=data["direction"],
            started_at=data["started_at"],
            wait_seconds=data["wait_seconds"],
            talk_seconds=data["talk_seconds"],
            hold_seconds=data["hold_seconds"],
            ended_by=data["ended_by"],
            notes=data["notes"],
        )
    except ApplicationError as exc:
        return conversation_refused(request, pk, exc)
    if call.message.conversation_id != pk:
        messages.success(request, "The conversation was closed: the call opened this follow-up.")
    else:
        messages.success(request, "Call logged.")
    return redirect("workspace:conversation", pk=call.message.conversation_id)


# --- Starting a conversation ---------------------------------------------------------------------------


def _start_context(
    request: StaffRequest, form: ConversationStartForm, customer: Customer | None
) -> dict[str, Any]:
    return {
        "form": form,
        "customer": customer,
        "channels": selectors.channels_to_start_on(),
        "teams": selectors.team_list_for_user(user=request.user),
        "identities": list(customer.identities.order_by("kind", "value")) if customer else [],
    }


@login_required
@require_http_methods(["GET", "POST"])
def conversation_new(request: StaffRequest) -> HttpResponse:
    """``/conversations/new/``: the desk writes first, to a customer or to a new address."""
    source = request.POST if request.method == "POST" else request.GET
    customer: Customer | None = None
    customer_ref = source.get("customer", "")
    if customer_ref:
        customer = selectors.customer_get_for_user(user=request.user, pk=customer_ref)
    if request.method == "GET":
        form = ConversationStartForm(
            initial={
                "customer": customer.pk if customer else None,
                "to": request.GET.get("to", "")[:320],
            }
        )
        return render(
            request, "tickets/conversation_new.html", _start_context(request, form, customer)
        )
    form = ConversationStartForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "tickets/conversation_new.html",
            _start_context(request, form, customer),
            status=400,
        )
    data = form.cleaned_data
    channel = Channel.objects.filter(pk=data["channel"], is_active=True).first()
    try:
        if channel is None:
            raise ApplicationError("Choose a channel to write on.")
        to = None
        if data["to"]:
            kind = {"email": "email", "chat": "chat", "social": "social"}.get(channel.kind, "")
            to = services.Handle(kind=kind, value=data["to"])
        conversation = services.conversation_start(
            actor=request.user,
            channel=channel,
            body=data["body"],
            customer=customer,
            to=to,
            subject=data["subject"],
            team=_own_team(request, data["team"]),
        )
    except services.HandleTaken as exc:
        if selectors.customer_visible_to(user=request.user, pk=exc.holder_id):
            form.add_error("to", f"This handle belongs to another customer (#{exc.holder_id}).")
        else:
            form.add_error("to", "This handle belongs to another customer.")
        return render(
            request,
            "tickets/conversation_new.html",
            _start_context(request, form, customer),
            status=exc.status,
        )
    except ApplicationError as exc:
        form.add_error(None, str(exc))
        return render(
            request,
            "tickets/conversation_new.html",
            _start_context(request, form, customer),
            status=exc.status,
        )
    messages.success(request, "Conversation started: the message is on its way.")
    return redirect("workspace:conversation", pk=conversation.pk)
