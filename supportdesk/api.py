"""API plumbing shared by every app: the exception handler and the documented error shape."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from supportdesk.errors import ApplicationError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map domain errors to JSON 4xx answers: ``{"detail": "...", ...}``."""
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, **exc.extra}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        data = response.data
        if isinstance(data, dict) and "detail" not in data:
            response.data = {"detail": "Invalid input.", "errors": data}
        elif isinstance(data, list):
            response.data = {"detail": " ".join(str(item) for item in data), "errors": data}
    return response


class ErrorOutputSerializer(serializers.Serializer[Any]):
    """Every 4xx of the API: ``{"detail": "...", ...}`` (docs/api.md)."""

    detail = serializers.CharField()
    # SerializerMetaclass moves declared fields out of the class body, so this field does not
    # shadow Serializer.errors at run time; the stubs do not know that.
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Per-field messages (validation errors)."
    )


ERROR_DESCRIPTIONS = {
    400: "Invalid input, or the domain refuses the request.",
    401: "Missing or invalid credentials.",
    403: "Authenticated, but not allowed.",
    404: "No such object, or not visible to you.",
    409: "Conflicts with the current state (or If-Match names an older version: someone changed "
    "it meanwhile; nothing was applied).",
    410: "Gone: the link or object has expired.",
    413: "Body or attachment too large; nothing was stored.",
    415: "Unsupported Content-Type.",
    422: "This Idempotency-Key was already used for a different request.",
    429: "Too many requests; retry after the Retry-After header's seconds.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The schema's description of the given 4xx answers (JSON ``ErrorOutput``)."""
    return {
        code: OpenApiResponse(ErrorOutputSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in codes
    }
