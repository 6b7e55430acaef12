"""Notification pages (included at the root: the list keeps its old name, "notifications")."""

from django.urls import path

from notifications import views

urlpatterns = [
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/badge/", views.notification_badge, name="notifications-badge"),
    path("notifications/settings/", views.notification_settings, name="notifications-settings"),
    path("notifications/<int:pk>/open/", views.notification_open, name="notifications-open"),
    path(
        "conversations/<int:pk>/mentions/",
        views.mention_candidates,
        name="notifications-mention-candidates",
    ),
]
