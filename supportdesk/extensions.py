"""Places where a higher app adds to a lower app's pages and commands, without being imported.

The same direction rule as ``supportdesk.events``: ``tickets`` renders the conversation page and
runs ``seed_demo``; ``surveys`` and ``metrics`` register what they contribute from their
``AppConfig.ready()``. The lower app only knows slot names.

Panels
    ``register_panel(slot, render)``: ``render(request, **context) -> str`` returns HTML (already
    escaped, e.g. from ``render_to_string``) or ``""``. It must run a constant number of queries
    whatever the page shows. Slots in use:

    - ``conversation.sidebar`` (``conversation``, ``customer``): under the customer panel of the
      conversation page (latest CSAT and comment, open ideas, QA review of this conversation...).
    - ``conversation.actions`` (``conversation``): extra buttons/forms in the conversation's action bar.
    - ``message.actions`` (``conversation``, ``message``): extra links on one timeline entry. Called
      once per message, so it must run **no** query (build URLs only).
    - ``agent.home`` (``user``): blocks on the agent's start page (their scorecard, shout-outs...).
    - ``customer.page`` (``customer``): blocks on a customer's page (ideas, cancellations...), read
      through conversations the viewer may open.

Navigation
    ``register_nav(label, url_name, *, roles=None, order=100, more=False)``: a link in the top
    bar; ``more=True`` puts it in the bar's "More" menu (pages used weekly, not hourly).

Settings
    ``register_settings_page(label, url_name, description, *, order=100)``: a page on the admins'
    Settings index (``/settings/``), with one line saying what is set there.

Seeding
    ``register_seeder(name, seed)``: ``seed(*, rng, stdout)`` runs at the end of ``seed_demo`` in
    registration order, after the conversations exist (survey answers, QA reviews, ideas...); what
    it returns (a count, say) is ignored. Seeders go through their app's services like everything
    else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_panels: dict[str, list[Callable[..., str]]] = defaultdict(list)
_seeders: dict[str, Callable[..., object]] = {}


@dataclass(frozen=True)
class NavLink:
    label: str
    url_name: str
    roles: frozenset[str] | None
    order: int
    more: bool = False


_nav: dict[str, NavLink] = {}


def register_panel(slot: str, render: Callable[..., str]) -> None:
    if render not in _panels[slot]:
        _panels[slot].append(render)


def render_panels(slot: str, request: Any, **context: Any) -> list[str]:
    """The non-empty HTML fragments registered for ``slot``, in registration order."""
    fragments = []
    for render in _panels.get(slot, []):
        html = render(request, **context)
        if html:
            fragments.append(html)
    return fragments


def register_nav(
    label: str,
    url_name: str,
    *,
    roles: set[str] | None = None,
    order: int = 100,
    more: bool = False,
) -> None:
    _nav[url_name] = NavLink(label, url_name, frozenset(roles) if roles else None, order, more)


def nav_links_for(user: Any) -> list[NavLink]:
    role = getattr(user, "role", None)
    links = [link for link in _nav.values() if link.roles is None or role in link.roles]
    return sorted(links, key=lambda link: (link.order, link.label))


@dataclass(frozen=True)
class SettingsPage:
    label: str
    url_name: str
    description: str
    order: int


_settings_pages: dict[str, SettingsPage] = {}


def register_settings_page(
    label: str, url_name: str, description: str, *, order: int = 100
) -> None:
    _settings_pages[url_name] = SettingsPage(label, url_name, description, order)


def settings_pages() -> list[SettingsPage]:
    return sorted(_settings_pages.values(), key=lambda page: (page.order, page.label))


def register_seeder(name: str, seed: Callable[..., object]) -> None:
    _seeders[name] = seed


def seeders() -> list[tuple[str, Callable[..., object]]]:
    return list(_seeders.items())


# --- Annotations: a higher app's facts about a lower app's rows ---------------------------------
# ``register_annotator(name, fn)``: ``fn(ids) -> dict[int, Any]`` answers for many rows in a
# constant number of queries. In use: ``conversation.outcome`` (conversation ids -> "resolved",
# "partly", "not_resolved", "no_answer" or "no_survey"), registered by surveys and read by the
# workspace's customer panel.
_annotators: dict[str, Callable[[list[int]], dict[int, Any]]] = {}


def register_annotator(name: str, fn: Callable[[list[int]], dict[int, Any]]) -> None:
    _annotators[name] = fn


def annotate(name: str, ids: list[int]) -> dict[int, Any]:
    """What the app registered under ``name`` says about ``ids``; {} when nobody registered."""
    fn = _annotators.get(name)
    return fn(list(ids)) if fn and ids else {}


# --- Privacy: a higher app's part of erasing and exporting a customer ----------------------------
# ``register_eraser(name, fn)``: ``fn(scope)`` removes the app's personal text about the
# customer (survey comments, QA comments, idea quotes...) and returns how many rows it changed.
# It runs inside ``tickets.services.customer_erase``'s transaction, so an erasure is whole or
# not at all, and it must keep every figure (scores, answers, counts) as it is.
# ``register_exporter(name, fn)``: ``fn(scope)`` returns what the app holds about the customer
# (JSON-serialisable) for a subject-access export; it appears under ``name`` in the export.
# ``scope`` is a ``PrivacyScope``: the customer ids (the customer and those merged into it), their
# conversation ids, and the strings to remove (``needles``: names, addresses, numbers, text).


@dataclass(frozen=True)
class PrivacyScope:
    customer_ids: tuple[int, ...]
    conversation_ids: tuple[int, ...]
    needles: tuple[str, ...] = ()


_erasers: dict[str, Callable[[PrivacyScope], int]] = {}
_exporters: dict[str, Callable[[PrivacyScope], Any]] = {}


def register_eraser(name: str, fn: Callable[[PrivacyScope], int]) -> None:
    _erasers[name] = fn


def erasers() -> list[tuple[str, Callable[[PrivacyScope], int]]]:
    return list(_erasers.items())


def register_exporter(name: str, fn: Callable[[PrivacyScope], Any]) -> None:
    _exporters[name] = fn


def exporters() -> list[tuple[str, Callable[[PrivacyScope], Any]]]:
    return list(_exporters.items())


# --- Hooks: a higher app's work inside a lower app's transaction ----------------------------------
# ``register_hook(name, fn)``: ``fn(**kwargs)`` runs inside the lower app's transaction, after its
# own writes, so that what it decides (a due time, an assignee) is there when the change commits.
# A hook must never make the lower app's change fail: it catches its own errors. In use:
# ``conversation.inbound`` (``conversation_id``, ``message_id``, ``created``, ``reopened``), run by
# ingestion for a person's message, and ``conversation.reopened`` (``conversation_id``), run when an
# agent reopens a conversation; ``conversation.priority_changed`` (``conversation``, locked, not yet
# saved: a hook may set ``due_at``), run when its priority changes; all registered by routing.
_hooks: dict[str, list[Callable[..., None]]] = defaultdict(list)


def register_hook(name: str, fn: Callable[..., None]) -> None:
    if fn not in _hooks[name]:
        _hooks[name].append(fn)


def run_hooks(name: str, **kwargs: Any) -> None:
    for fn in _hooks.get(name, []):
        fn(**kwargs)
