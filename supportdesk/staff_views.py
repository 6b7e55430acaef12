"""Staff and team administration pages (admins): invite, role and teams, deactivate, tokens.

Every change goes through a service in ``supportdesk.services`` (which writes the audit entry);
these views only check the role and the shape of the input.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.models import Team, User
from supportdesk.selectors import staff_list_for_admin
from supportdesk.services import (
    staff_deactivate,
    staff_invite,
    staff_reactivate,
    staff_token_rotate,
    staff_update,
    team_create,
    team_rename,
)


class StaffForm(forms.Form):
    role = forms.ChoiceField(choices=User.Role.choices, label="Role")
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.order_by("name"),
        required=False,
        label="Teams",
        widget=forms.CheckboxSelectMultiple,
    )


class InviteForm(StaffForm):
    email = forms.EmailField(max_length=254, label="Email")
    full_name = forms.CharField(max_length=150, required=False, label="Name")

    field_order = ["email", "full_name", "role", "teams"]


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100, label="Team name")


def _admin_only(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins manage staff and teams.")


def _list_page(
    request: StaffRequest, *, invite_form: InviteForm | None = None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "settings/staff.html",
        {
            "staff": staff_list_for_admin(),
            "invite_form": invite_form or InviteForm(),
            "team_form": TeamForm(),
            "teams": Team.objects.order_by("name"),
        },
        status=status,
    )


@login_required
@require_GET
def staff_list(request: StaffRequest) -> HttpResponse:
    _admin_only(request)
    return _list_page(request)


@login_required
@require_POST
def staff_invite_view(request: StaffRequest) -> HttpResponse:
    _admin_only(request)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            user = staff_invite(
                email=form.cleaned_data["email"],
                full_name=form.cleaned_data["full_name"],
                role=form.cleaned_data["role"],
                team_ids=[team.pk for team in form.cleaned_data["teams"]],
                actor=request.user,
            )
        except ApplicationError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, f"Invitation sent to {user.email}.")
            return redirect("staff-list")
    return _list_page(request, invite_form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def staff_edit(request: StaffRequest, pk: int) -> HttpResponse:
    _admin_only(request)
    member = get_object_or_404(User, pk=pk)
    status = 200
    if request.method == "POST":
        form = StaffForm(request.POST)
        if form.is_valid():
            try:
                staff_update(
                    user=member,
                    role=form.cleaned_data["role"],
                    team_ids=[team.pk for team in form.cleaned_data["teams"]],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{member.email} saved.")
                return redirect("staff-list")
        status = 400
    else:
        form = StaffForm(initial={"role": member.role, "teams": list(member.teams.all())})
    return render(
        request, "settings/staff_edit.html", {"member": member, "form": form}, status=status
    )


@login_required
@require_POST
def staff_deactivate_view(request: StaffRequest, pk: int) -> HttpResponse:
    _admin_only(request)
    member = get_object_or_404(User, pk=pk)
    try:
        staff_deactivate(user=member, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, str(exc))
        return redirect("staff-edit", pk=member.pk)
    messages.success(request, f"{member.email} deactivated: signed out, API token stopped.")
    return redirect("staff-list")


@login_required
@require_POST
def staff_reactivate_view(request: StaffRequest, pk: int) -> HttpResponse:
    _admin_only(request)
    member = get_object_or_404(User, pk=pk)
    staff_reactivate(user=member, actor=request.user)
    messages.success(request, f"{member.email} reactivated.")
    return redirect("staff-list")


@login_required
@require_POST
def staff_token_rotate_view(request: StaffRequest, pk: int) -> HttpResponse:
    """A new API token for the member, shown on this page only (it is stored sealed)."""
    _admin_only(request)
    member = get_object_or_404(User, pk=pk)
    token = staff_token_rotate(user=member, actor=request.user)
    response = render(request, "settings/staff_token.html", {"member": member, "key": token.key})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def team_create_view(request: StaffRequest) -> HttpResponse:
    _admin_only(request)
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = team_create(name=form.cleaned_data["name"], actor=request.user)
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Team {team.name} created.")
            return redirect("staff-list")
    else:
        messages.error(request, "A team needs a name of at most 100 characters.")
    return _list_page(request, status=400)


@login_required
@require_POST
def team_rename_view(request: StaffRequest, pk: int) -> HttpResponse:
    _admin_only(request)
    team = get_object_or_404(Team, pk=pk)
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team_rename(team=team, name=form.cleaned_data["name"], actor=request.user)
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Team renamed {team.name}.")
            return redirect("staff-list")
    else:
        messages.error(request, "A team needs a name of at most 100 characters.")
    return _list_page(request, status=400)
