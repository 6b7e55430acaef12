from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Model
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from rest_framework.authtoken.models import TokenProxy

from supportdesk.http import staff_user
from supportdesk.models import AuditEntry, OutboxItem, Team, User
from supportdesk.security import rate_limited_admin_login
from supportdesk.services import audit_record, staff_audit_changes, staff_snapshot

# limits: the admin's login form counts against the same login rate limits as /login/.
admin.site.login = rate_limited_admin_login(admin.site.login)  # type: ignore[method-assign]

# DRF's token table is empty (API tokens live in supportdesk.ApiToken, digested and sealed);
# staff tokens are created and rotated with `manage.py create_staff`, never edited by hand.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)

_M = TypeVar("_M", bound=Model)
_P = TypeVar("_P", bound=Model)

# Django's admin classes are generic to the type checker only (django-stubs); at run time they
# cannot be subscripted (django_stubs_ext, which would patch them, is a dev-only package). These
# stand-ins take the model as a type argument in both worlds: `ModelAdmin[Channel]`.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin
    TabularInline = admin.TabularInline
    _UserAdminBase = DjangoUserAdmin[User]
else:
    _UserAdminBase = DjangoUserAdmin

    class ModelAdmin(admin.ModelAdmin, Generic[_M]):
        pass

    class TabularInline(admin.TabularInline, Generic[_M, _P]):
        pass


class ReadOnlyAdmin(ModelAdmin[_M]):
    """A domain record shown to admins and never edited by hand.

    Changing a conversation, a customer or a survey has consequences a bare row write skips (an
    event, a version bump, an audit entry, an outbox task): what an admin may change goes through
    admin actions that call the services.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


class ReadOnlyInline(TabularInline[_M, _P]):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return False


# The staff snapshot taken before an admin's change, carried from save_model to save_related.
AUDIT_BEFORE_ATTRIBUTE = "_audit_staff_before"


@admin.register(User)
class UserAdmin(_UserAdminBase):
    ordering = ["email"]
    list_display = ["email", "full_name", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active", "teams"]
    search_fields = ["email", "full_name"]
    filter_horizontal = ["teams", "groups", "user_permissions"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "role", "teams")}),
        (
            "Access",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),
    )

    # Audit: role, team and access changes made here are recorded in the admin's transaction
    # (changeform_view is atomic), compared after the teams (a many-to-many) are saved.
    def save_model(
        self, request: HttpRequest, obj: User, form: forms.ModelForm[User], change: bool
    ) -> None:
        if change:
            before = staff_snapshot(User.objects.get(pk=obj.pk))
            setattr(request, AUDIT_BEFORE_ATTRIBUTE, before)
        super().save_model(request, obj, form, change)

    def save_related(
        self,
        request: HttpRequest,
        form: forms.ModelForm[User],
        formsets: list[BaseInlineFormSet[Any, User, Any]],
        change: bool,
    ) -> None:
        super().save_related(request, form, formsets, change)
        user = form.instance
        before: dict[str, Any] | None = getattr(request, AUDIT_BEFORE_ATTRIBUTE, None)
        actor = staff_user(request)
        if before is None:
            audit_record(
                action=AuditEntry.Action.STAFF_CREATED,
                target=user,
                actor=actor,
                summary=f"{user.email} created as {user.role} (admin)",
                details=staff_snapshot(user),
            )
        else:
            staff_audit_changes(user=user, before=before, actor=actor)


@admin.register(AuditEntry)
class AuditEntryAdmin(ModelAdmin[AuditEntry]):
    """Read-only: entries are written by supportdesk.services.audit_record only."""

    list_display = ["at", "action", "actor_email", "summary", "ip"]
    list_filter = ["action", "team"]
    search_fields = ["summary", "actor_email", "target_id", "request_id"]
    date_hierarchy = "at"

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEntry | None = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(ModelAdmin[Team]):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(OutboxItem)
class OutboxItemAdmin(ModelAdmin[OutboxItem]):
    list_display = ["id", "task_name", "created_at", "relayed_at", "attempts"]
    list_filter = ["task_name"]
    readonly_fields = ["task_name", "kwargs", "created_at", "relayed_at", "attempts", "last_error"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
