"""The customer's language: which of ``settings.LANGUAGES`` a tag, a browser or an email means.

Customer-facing pages (survey, chat, unsubscribe, expired link) are rendered in the language of
``?lang=`` when it names a supported one, else the browser's ``Accept-Language``, else English;
``customer_language`` wraps such a view (it activates the language for the request and says so
in ``Content-Language``). There is no ``LocaleMiddleware``: staff pages stay English whatever
their browser asks for. Mail to a customer is rendered with ``translation.override`` of the
language stored on the customer (``Customer.language``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation.trans_real import parse_accept_lang_header

P = ParamSpec("P")

# Longest header or parameter value looked at: anything longer is not a language preference.
_MAX_HEADER = 400


def supported_languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def language_choices() -> list[tuple[str, str]]:
    return [(code, str(name)) for code, name in settings.LANGUAGES]


def supported_language(tag: str) -> str:
    """The supported language a tag names ("es-MX" -> "es", "pt-BR" -> "pt-br", "pt" ->
    "pt-br"); "" for anything else."""
    tag = tag.strip().lower().replace("_", "-")[:35]
    if not tag or tag == "*":
        return ""
    supported = supported_languages()
    if tag in supported:
        return tag
    base = tag.partition("-")[0]
    if base in supported:
        return base
    for code in supported:  # "pt" or "pt-pt" -> the one Portuguese there is
        if code.partition("-")[0] == base:
            return code
    return ""


def accept_language(header: str) -> str:
    """The first supported language of an ``Accept-Language`` (or ``Content-Language``)
    header, by preference; "" when none is."""
    if not header or len(header) > _MAX_HEADER:
        return ""
    for tag, _quality in parse_accept_lang_header(header):
        code = supported_language(tag)
        if code:
            return code
    return ""


def request_language(request: HttpRequest) -> str:
    """``?lang=`` when supported, else the browser's preference; "" when neither names one."""
    return supported_language(request.GET.get("lang", "")[:35]) or accept_language(
        request.headers.get("Accept-Language", "")
    )


# The chat page keeps a ``?lang=`` choice for the rest of the visit (its forms post without it).
SESSION_KEY = "customer_language"


def page_language(request: HttpRequest, *, remember: bool = False) -> str:
    """The language a customer-facing page is shown in: ``?lang=``, then (``remember``) the
    choice kept in the session, then the browser's, then English."""
    chosen = supported_language(request.GET.get("lang", "")[:35])
    session = getattr(request, "session", None)
    if remember and session is not None:
        if chosen:
            if session.get(SESSION_KEY) != chosen:
                session[SESSION_KEY] = chosen
        else:
            chosen = supported_language(str(session.get(SESSION_KEY, "")))
    return (
        chosen
        or accept_language(request.headers.get("Accept-Language", ""))
        or default_page_language()
    )


def visitor_language(request: HttpRequest) -> str:
    """What the visitor asked for (``?lang=``, the session's choice, the browser); "" when
    nothing did: the language stored on a customer is never a guess."""
    session = getattr(request, "session", None)
    kept = supported_language(str(session.get(SESSION_KEY, ""))) if session is not None else ""
    return supported_language(request.GET.get("lang", "")[:35]) or kept or request_language(request)


def default_page_language() -> str:
    return supported_language(settings.LANGUAGE_CODE) or "en"


def customer_language(
    view: Callable[P, HttpResponseBase],
) -> Callable[P, HttpResponseBase]:
    """Render a customer-facing view in ``page_language``; the response says which."""
    return _in_page_language(view, remember=False)


def customer_language_remembered(
    view: Callable[P, HttpResponseBase],
) -> Callable[P, HttpResponseBase]:
    """``customer_language`` that keeps a ``?lang=`` choice in the session (the chat page)."""
    return _in_page_language(view, remember=True)


def _in_page_language(
    view: Callable[P, HttpResponseBase], *, remember: bool
) -> Callable[P, HttpResponseBase]:
    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        request = args[0]
        assert isinstance(request, HttpRequest)
        language = page_language(request, remember=remember)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = view(*args, **kwargs)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        response.headers.setdefault("Content-Language", language)
        patch_vary_headers(response, ["Accept-Language"])
        return response

    return wrapper
