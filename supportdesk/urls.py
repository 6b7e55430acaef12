from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from supportdesk import security, views, webhooks

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
    path("login/", security.login, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
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
