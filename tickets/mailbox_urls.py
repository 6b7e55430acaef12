"""/mailboxes/: the admin pages for mailboxes (tickets/mailbox_views.py)."""

from django.urls import path

from tickets import mailbox_views as views

urlpatterns = [
    path("", views.mailbox_list, name="mailboxes"),
    path("new/", views.mailbox_new, name="mailbox-new"),
    path("oauth/callback/", views.mailbox_oauth_callback, name="mailbox-oauth-callback"),
    path("<int:pk>/", views.mailbox_edit, name="mailbox-edit"),
    path("<int:pk>/test/", views.mailbox_test, name="mailbox-test"),
    path("<int:pk>/poll/", views.mailbox_poll_now, name="mailbox-poll"),
    path("<int:pk>/oauth/", views.mailbox_oauth_start, name="mailbox-oauth-start"),
]
