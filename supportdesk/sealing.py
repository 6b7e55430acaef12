"""Secrets at rest: channel secrets and API tokens (docs/security, "Secrets at rest").

The database never holds a secret in plain text. Each one is stored twice over:

- a **digest** (SHA-256 of the secret, hex), unique and indexed: a presented secret is found by
  its digest and then compared with ``hmac.compare_digest``, so neither the query nor the
  comparison depends on how much of a guess matches a stored secret;
- a **sealed** copy (Fernet: AES-128-CBC with HMAC-SHA256) under a key derived from
  ``SECRET_KEY``, for the two places that need the value itself: signing a chat or social
  channel's outbound webhooks, and the admin commands that print a channel's secret or a staff
  member's token on every run (``docs/api.md``).

A dump of the database alone therefore reveals no secret; with ``SECRET_KEY`` it does, which is
why production refuses a development key. Rotating ``SECRET_KEY`` keeps sealed copies readable
while the old key is listed in ``SECRET_KEY_FALLBACKS``; digests do not depend on the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

_KEY_SALT = "supportdesk.sealing"


class UnsealError(Exception):
    """A sealed secret that no current or fallback SECRET_KEY opens."""


def secret_digest(value: str) -> str:
    """The stored digest of a secret: 64 hex characters."""
    return hashlib.sha256(value.encode()).hexdigest()


def digests_match(stored: str, presented: str) -> bool:
    """Constant-time comparison of a stored digest with the digest of a presented secret."""
    return hmac.compare_digest(stored.encode(), secret_digest(presented).encode())


def _fernet(secret_key: str) -> Fernet:
    raw = salted_hmac(_KEY_SALT, "fernet", secret=secret_key, algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(raw))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(key) for key in keys])


def seal(value: str) -> str:
    """The sealed copy of a secret, under the current SECRET_KEY."""
    return _keys().encrypt(value.encode()).decode()


def unseal(sealed: str) -> str:
    """The secret a sealed copy holds; UnsealError if SECRET_KEY (or a fallback) cannot open it."""
    try:
        return _keys().decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise UnsealError(
            "A stored secret cannot be opened with SECRET_KEY or SECRET_KEY_FALLBACKS."
        ) from exc
