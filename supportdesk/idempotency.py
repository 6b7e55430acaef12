"""``Idempotency-Key`` for POST endpoints: a client retry gets the first answer, not a second effect.

The same key from the same user within ``IDEMPOTENCY_KEY_HOURS`` replays the stored status and
body (header ``Idempotent-Replayed: true``); the same key with a different request is a 422.
Only successful answers are stored: a refused request (4xx) rolled back, and its retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.errors import ApplicationError
from supportdesk.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_MAX_CHARS = 255


class IdempotencyKeyReused(ApplicationError):
    status = 422


def _fingerprint(request: Request) -> str:
    data = request.data
    if hasattr(data, "lists"):  # a QueryDict (form posts)
        data = dict(data.lists())
    body = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    """Run ``handler`` once per (user, Idempotency-Key); without the header, just run it."""
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    key = key.strip()
    if not key or len(key) > KEY_MAX_CHARS or not key.isprintable():
        raise ApplicationError(
            f"{HEADER} must be 1 to {KEY_MAX_CHARS} printable characters (a UUID is a good key)."
        )
    fingerprint = _fingerprint(request)
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    with transaction.atomic():
        IdempotencyKey.objects.filter(user=request.user, key=key, created_at__lt=cutoff).delete()
        try:
            with transaction.atomic():
                # A concurrent request with this key blocks here until the first one commits
                # (then IntegrityError: replay its answer) or rolls back (then this one runs).
                record = IdempotencyKey.objects.create(
                    user=request.user, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            record = IdempotencyKey.objects.get(user=request.user, key=key)
            return _replay(record, fingerprint)
        response = handler()
        record.response_status = response.status_code
        record.response_body = response.data
        record.save(update_fields=["response_status", "response_body"])
    return response


def _replay(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"This {HEADER} was already used for a different request. Use a new key for a new "
            "request, and the same key only to retry the very same one."
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response
