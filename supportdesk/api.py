"""API plumbing shared by every app: the exception handler."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
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
