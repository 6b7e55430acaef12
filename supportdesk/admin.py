from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from supportdesk.models import OutboxItem, Team, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
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


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(OutboxItem)
class OutboxItemAdmin(admin.ModelAdmin):
    list_display = ["id", "task_name", "created_at", "relayed_at", "attempts"]
    list_filter = ["task_name"]
    readonly_fields = ["task_name", "kwargs", "created_at", "relayed_at", "attempts", "last_error"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
