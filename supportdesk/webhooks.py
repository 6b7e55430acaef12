"""django-anymail's provider webhooks, answering 404 for a provider this desk has not set up.

Anymail builds a provider's webhook view only when its settings (a signing key, an API key) and
its package are present; otherwise every call raised ImproperlyConfigured, a 500 that anyone could
trigger. A provider that is not set up is, for the desk, a URL that does not exist.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailConfigurationError
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern

logger = logging.getLogger(__name__)


def _set_up_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)  # keeps csrf_exempt and the view's other attributes
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except AnymailConfigurationError as exc:  # includes a missing provider package
            logger.warning(
                "Webhook %s called, but its provider is not set up: %s", request.path, exc
            )
            raise Http404("This email provider is not set up on this desk.") from exc

    return wrapper


def urlpatterns() -> list[URLPattern]:
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        assert isinstance(pattern, URLPattern), pattern
        patterns.append(
            URLPattern(pattern.pattern, _set_up_only(pattern.callback), name=pattern.name)
        )
    return patterns
