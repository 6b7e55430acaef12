"""Request gates that sit in front of third-party views."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def anymail_webhook_gate(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Provider webhooks under /anymail/ answer 403 while ``ANYMAIL_WEBHOOK_SECRET`` is unset.

    Without that secret anymail only warns and accepts any request, so anyone who finds the URL
    could post mail "from" any customer, or fake bounce events. Failing closed makes the secret
    mandatory; with it, anymail checks basic auth (and the provider's signature, e.g. Mailgun's).
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/anymail/") and not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            return JsonResponse(
                {"detail": "Provider webhooks are off: set ANYMAIL_WEBHOOK_SECRET."}, status=403
            )
        return get_response(request)

    return middleware
