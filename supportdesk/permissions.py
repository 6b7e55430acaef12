from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.permissions import BasePermission

from supportdesk.models import User

if TYPE_CHECKING:
    from rest_framework.request import Request


class IsStaffMember(BasePermission):
    """Any active agent, manager or admin."""

    message = "Authentication as a staff member is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_active
            and getattr(user, "role", None) is not None
        )


class IsManager(IsStaffMember):
    message = "Only managers and admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return super().has_permission(request, view) and isinstance(user, User) and user.is_manager


class IsAdmin(IsStaffMember):
    message = "Only admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return super().has_permission(request, view) and isinstance(user, User) and user.is_admin
