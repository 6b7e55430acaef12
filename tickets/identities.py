"""Normalising handles so that one exact match finds the customer (pure functions)."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

_SOCIAL_NETWORK_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,29}$")
_SOCIAL_HANDLE_RE = re.compile(r"^[\w.\-]{1,200}$", re.UNICODE)


def normalise_email(value: str) -> str:
    email = (value or "").strip().strip("<>").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError(f"{value!r} is not a valid email address.") from exc
    return email


def normalise_phone(value: str, *, region: str | None = None) -> str:
    """E.164 (``+14155550100``); numbers without a country code use PHONE_DEFAULT_REGION."""
    raw = (value or "").strip()
    try:
        number = phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"{value!r} is not a phone number.") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(f"{value!r} is not a possible phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_social(network: str, handle: str) -> str:
    net = (network or "").strip().lower()
    hnd = (handle or "").strip().lstrip("@").lower()
    if not _SOCIAL_NETWORK_RE.match(net):
        raise ValidationError(f"{network!r} is not a valid network name.")
    if not _SOCIAL_HANDLE_RE.match(hnd):
        raise ValidationError(f"{handle!r} is not a valid handle.")
    return f"{net}:{hnd}"


def normalise_opaque(value: str) -> str:
    token = (value or "").strip()
    if not token or len(token) > 255:
        raise ValidationError("An id must have 1 to 255 characters.")
    return token


def normalise_identity(kind: str, value: str) -> str:
    """Normalise ``value`` for ``kind``; raises ValidationError with a clear message."""
    if kind == "email":
        return normalise_email(value)
    if kind == "phone":
        return normalise_phone(value)
    if kind == "social":
        network, sep, handle = (value or "").partition(":")
        if not sep:
            raise ValidationError("A social handle is written network:handle, e.g. x:@jane.")
        return normalise_social(network, handle)
    if kind in {"chat", "external"}:
        return normalise_opaque(value)
    raise ValidationError(f"Unknown identity kind {kind!r}.")
