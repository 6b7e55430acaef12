from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from supportdesk import security, settings_views, staff_views, views, webhooks

urlpatterns = [
    path("", include("tickets.home_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("", include("notifications.urls")),
    path("audit/", views.audit_log, name="audit-log"),
    path("settings/email-templates/", views.mail_template_list, name="mail-templates"),
    path(
        "settings/email-templates/<str:key>/",
        views.mail_template_edit,
        name="mail-template-edit",
    ),
    path(
        "settings/email-templates/<str:key>/preview/",
        views.mail_template_preview,
        name="mail-template-preview",
    ),
    path("settings/signature/", views.signature_edit, name="signature"),
    path("settings/signature/preview/", views.signature_preview, name="signature-preview"),
    path("mailboxes/", include("tickets.mailbox_urls")),
    path("settings/", settings_views.settings_index, name="settings-index"),
    path("settings/webhook-hosts/", settings_views.webhook_hosts, name="webhook-hosts"),
    path(
        "settings/webhook-hosts/<int:pk>/remove/",
        settings_views.webhook_host_remove,
        name="webhook-host-remove",
    ),
    path("settings/staff/", staff_views.staff_list, name="staff-list"),
    path("settings/staff/invite/", staff_views.staff_invite_view, name="staff-invite"),
    path("settings/staff/<int:pk>/", staff_views.staff_edit, name="staff-edit"),
    path(
        "settings/staff/<int:pk>/deactivate/",
        staff_views.staff_deactivate_view,
        name="staff-deactivate",
    ),
    path(
        "settings/staff/<int:pk>/reactivate/",
        staff_views.staff_reactivate_view,
        name="staff-reactivate",
    ),
    path(
        "settings/staff/<int:pk>/token/",
        staff_views.staff_token_rotate_view,
        name="staff-token-rotate",
    ),
    path("settings/teams/", staff_views.team_create_view, name="team-create"),
    path("settings/teams/<int:pk>/", staff_views.team_rename_view, name="team-rename"),
    # accounts: the sign-in page is allauth's (behind the project's rate limits and django-axes);
    # /login/ stays its address, allauth's own /accounts/login/ answers the same view.
    path("login/", security.login, name="login"),
    path("accounts/login/", security.login, name="account_login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("tickets.urls")),
    path("api/v1/", include("notifications.api_urls")),
    path("api/v1/", include("routing.api_urls")),
    path("api/v1/", include("surveys.api_urls")),
    path("api/v1/", include("metrics.api_urls")),
    path("", include("tickets.web_urls")),
    path("", include("tickets.widget_urls")),
    path("", include("routing.urls")),
    path("", include("surveys.urls")),
    path("", include("metrics.urls")),
    path("", include("quality.urls")),
    # Anymail's provider webhooks; a provider that is not set up answers 404, not 500.
    path("anymail/", include((webhooks.urlpatterns(), "anymail"))),
]

# limits: 429 for rate-limited views, and 500 pages that reveal nothing but a request id; a
# database outage outside a view answers 503 instead (faults: supportdesk.outage).
handler403 = security.handler403
handler500 = security.handler500
# A URL under /api/ that matches no route answers JSON like every other API error.
handler404 = "supportdesk.views.page_not_found"
