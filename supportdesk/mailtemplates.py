"""Wording of outgoing email that staff write: templates, signatures, and the agent's Markdown.

Rendering stored text
    ``render(text, variables)`` replaces ``{name}`` and ``{name.part}`` with values from a flat
    mapping of *strings* and leaves everything else as typed. This is deliberately not a template
    engine. Django's engine, even with no builtins or loaders, still resolves ``{{ a.b }}`` by
    attribute, item and method lookup on whatever objects are in the context, so a template an
    admin (or someone holding an admin's session) stores could read ``{{ survey.conversation.
    customer... }}`` or call methods; ``str.format`` is worse (``{0.__class__.__init__.__globals__}``).
    Here the context is built by the caller as a dict of already-computed strings, the only syntax
    is a name from that dict, and anything else (``{{ x }}``, ``{% load %}``, ``{0.__class__}``,
    ``${x}``, an unknown ``{name}``) is copied through literally. The output is plain text:
    HTML is produced from it by ``markdown_html`` (markdown-it-py with raw HTML disabled, then
    nh3), so a value or a stored template cannot add markup either.

Languages
    ``MailTemplate`` rows are per language; ``mail_template_for`` takes the row of the requested
    language (or its base: "es" for "es-mx"), then the built-in wording in ``DEFAULTS`` when it
    is translated into that language (``settings.LANGUAGES``, catalogues in ``locale/``), then
    the row of ``settings.LANGUAGE_CODE``, then the built-in English. So a customer is written
    to in their language whenever the desk has the words for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import nh3
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise
from markdown_it import MarkdownIt

from supportdesk.models import MailTemplate, MailTemplateKey

_VARIABLE = re.compile(r"\{([a-z][a-z0-9_]{0,40}(?:\.[a-z][a-z0-9_]{0,40})?)\}")

# "commonmark" with html=False: raw HTML in the agent's text is shown as text, not passed on.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})

# What an email's HTML part may hold after rendering: formatting, links, lists, quotes, code.
_ALLOWED_TAGS = {
    "p", "br", "strong", "em", "a", "ul", "ol", "li", "blockquote", "code", "pre",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}


def render(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every ``{known.variable}`` replaced; everything else literal (see above)."""

    def replace(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return match.group(0) if value is None else str(value)

    return _VARIABLE.sub(replace, text)


def markdown_html(text: str) -> str:
    """Safe HTML for an email's HTML part from plain text or Markdown (rendered, then nh3)."""
    html = _MARKDOWN.render(text)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer",
    ).strip()


@dataclass(frozen=True)
class TemplateDefault:
    # Translated when read (str() under the language wanted: ``mail_template_for``).
    subject: StrOrPromise
    body: StrOrPromise
    # name -> what it holds, shown beside the editor; only these are substituted.
    variables: Mapping[str, str]


_CUSTOMER_VARIABLES = {
    "customer.name": "The customer's name (or their address when unknown)",
    "customer.first_name": "The first word of the customer's name",
    "conversation.id": "The conversation number",
    "conversation.subject": "The conversation's subject",
    "channel.name": "The mailbox (channel) name",
    "desk.name": "The desk's name as senders see it",
}

DEFAULTS: dict[str, TemplateDefault] = {
    MailTemplateKey.ACKNOWLEDGEMENT: TemplateDefault(
        subject=_("Re: {conversation.subject}"),
        body=_(
            "Hello {customer.first_name},\n\n"
            "we got your message and will answer as soon as we can. "
            "Reply to this email to add anything; it joins the same conversation.\n\n"
            "{desk.name}"
        ),
        variables={
            **_CUSTOMER_VARIABLES,
            "conversation.due": "When we promised to answer, in the team's time zone (the "
            "promise for the channel and priority, in business hours); empty without a promise",
        },
    ),
    MailTemplateKey.SURVEY: TemplateDefault(
        subject=_("Did we resolve your request?"),
        body=_(
            "Hello,\n\n"
            "{agent.first_name} marked your request “{conversation.subject}” as solved. "
            "Only you can tell us whether it really is."
        ),
        variables={
            **_CUSTOMER_VARIABLES,
            "agent.first_name": "The first name of the agent who solved it",
        },
    ),
    MailTemplateKey.SURVEY_REMINDER: TemplateDefault(
        subject=_("Reminder: Did we resolve your request?"),
        body=_(
            "Hello,\n\n"
            "A few days ago we asked how your request went. If you have a moment, your answer "
            "helps us see what really happened."
        ),
        variables={
            **_CUSTOMER_VARIABLES,
            "agent.first_name": "The first name of the agent who solved it",
        },
    ),
    MailTemplateKey.STAFF_NOTIFICATION: TemplateDefault(
        subject="{notification.title}",
        body="{notification.body}\n\n{notification.link}",
        variables={
            "notification.title": "What happened, in one line",
            "notification.body": "The details (may be empty)",
            "notification.link": "The page to open",
            "recipient.name": "The staff member's name",
            "desk.name": "The desk's name",
        },
    ),
}

SIGNATURE_VARIABLES = {
    "agent.name": "The replying agent's full name",
    "agent.first_name": "The replying agent's first name",
    "agent.email": "The replying agent's login address",
    "channel.name": "The mailbox the reply goes out from",
    "channel.address": "That mailbox's address",
    "desk.name": "The desk's name",
    "customer.name": "The customer's name",
    "conversation.id": "The conversation number",
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def mail_template_for(*, key: str, language: str = "") -> tuple[str, str]:
    """(subject, body) for ``key`` in ``language``: the admin's row, the built-in translation,
    the default language's row, the built-in English (see above). One query."""
    wanted = translated_language(language)
    stored = mail_template_stored(key=key, language=language, fallback=not wanted)
    if stored is not None:
        return stored
    if wanted:
        # Not stored in the customer's language: the built-in translation beats the admin's
        # wording in another language (a second query only for languages without catalogues).
        return built_in_wording(key=key, language=wanted)
    return built_in_wording(key=key, language=default_language())


def built_in_wording(*, key: str, language: str) -> tuple[str, str]:
    """The built-in (subject, body) of ``key`` translated into ``language`` (English when the
    catalogues do not have it)."""
    fallback = DEFAULTS[key]
    with translation.override(translated_language(language) or "en"):
        return str(fallback.subject), str(fallback.body)


def translated_language(language: str) -> str:
    """The supported language ``language`` names when the catalogues translate into it and it
    is not the default language; "" otherwise."""
    code = language.strip().lower()
    supported = [c for c, _name in settings.LANGUAGES]
    if code not in supported:
        code = code.partition("-")[0]
        code = next((c for c in supported if c.partition("-")[0] == code), "") if code else ""
    return code if code and code.partition("-")[0] != default_language() else ""


def mail_template_stored(
    *, key: str, language: str = "", fallback: bool = True
) -> tuple[str, str] | None:
    """(subject, body) an admin stored for ``key`` in ``language`` (or its base language, or,
    with ``fallback``, the default language); None when there is none. One query."""
    requested = language.lower()
    languages: list[str] = []
    candidates = [requested, requested.partition("-")[0]]
    if fallback or not requested:
        candidates.append(default_language())
    for code in candidates:
        if code and code not in languages:
            languages.append(code)
    rows = {
        row.language: row for row in MailTemplate.objects.filter(key=key, language__in=languages)
    }
    for code in languages:
        row = rows.get(code)
        if row is not None:
            return row.subject, row.body
    return None


def mail_render(
    *, subject: str, body: str, variables: Mapping[str, str], html: bool = True
) -> RenderedMail:
    """Subject and body rendered with ``variables``; the subject is kept to one line."""
    text = render(body, variables).strip()
    return RenderedMail(
        subject=" ".join(render(subject, variables).split())[:300],
        text=text,
        html=markdown_html(text) if html else "",
    )


def default_language() -> str:
    """The language a template falls back to: LANGUAGE_CODE's base ("en" for "en-us")."""
    return settings.LANGUAGE_CODE.lower().partition("-")[0]


def desk_name() -> str:
    return str(settings.DESK_NAME)


def first_word(name: str) -> str:
    return name.split()[0] if name.strip() else ""
