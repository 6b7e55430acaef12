from anymail import urls as anymail_urls
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from supportdesk import views

# django-anymail's webhooks, without Amazon SES's: they need boto3, which is not installed, and
# would answer every call with a 500 (ImproperlyConfigured).
ANYMAIL_PATTERNS = [p for p in anymail_urls.urlpatterns if "amazon_ses" not in str(p.pattern)]

urlpatterns = [
    path("", include("tickets.home_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("notifications/", views.notifications, name="notifications"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("tickets.urls")),
    path("api/v1/", include("surveys.api_urls")),
    path("api/v1/", include("metrics.api_urls")),
    path("", include("tickets.web_urls")),
    path("", include("surveys.urls")),
    path("", include("metrics.urls")),
    path("anymail/", include((ANYMAIL_PATTERNS, "anymail"))),
]

# A URL under /api/ that matches no route answers JSON like every other API error.
handler404 = "supportdesk.views.page_not_found"
