"""``Idempotency-Key`` for POST endpoints: a client retry gets the first answer, not a second effect.

The same key from the same user within ``IDEMPOTENCY_KEY_HOURS`` replays the stored status and
body (header ``Idempotent-Replayed: true``); the same key with a different request is a 422.
Only successful answers are stored: a refused request (4xx) rolled back, and its retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.errors import ApplicationError
from supportdesk.http import staff_user
from supportdesk.models import IdempotencyKey
from supportdesk.services import idempotency_key_claim, idempotency_key_store

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
    user = staff_user(request)
    fingerprint = _fingerprint(request)
    with transaction.atomic():
        record = idempotency_key_claim(user=user, key=key, fingerprint=fingerprint)
        if record is None:
            return _replay(IdempotencyKey.objects.get(user=user, key=key), fingerprint)
        response = handler()
        idempotency_key_store(record=record, status=response.status_code, body=response.data)
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
