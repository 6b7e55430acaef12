"""Webhook URLs may not reach the desk's own network.

A webhook URL is an address the desk POSTs signed replies to. Left unchecked, whoever sets one
(or whoever answers at its address with a redirect) can point the desk at loopback, the private
network or a cloud metadata service. So a URL's host is resolved and every address it resolves
to must be a public one: loopback, private, shared (CGNAT), link-local, reserved, multicast,
unspecified and their IPv6 forms (including IPv4-mapped, NAT64, 6to4 and Teredo addresses that
embed one) are refused.

An admin may allow a host explicitly (``WebhookAllowedHost``, on the Settings > Webhook hosts
page, audited) and operations may list hosts in ``WEBHOOK_ALLOWED_HOSTS``; an allowed host is
not checked.

The check runs when a channel's webhook URL is set (``tickets.services.channels``) and again at
delivery (``webhook_opener``): the host is resolved again, and the address the connection
actually reached is checked, so a name that changes its answer between the two is still
refused. Redirects are never followed by the delivery.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import re
import socket
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, User, WebhookAllowedHost
from supportdesk.services import audit_record

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$"
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ApplicationError):
    """The URL points at an internal address (or cannot be resolved)."""


class HostNotResolved(UnsafeURL):
    """The host has no address now (at delivery a DNS failure is retried, not final)."""


# --- Addresses -------------------------------------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public_address(address: IPAddress) -> bool:
    """True only for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


# --- Hosts and the allow list ----------------------------------------------------------------------


def normalise_host(raw: str) -> str:
    """A host name or address as it is compared: lower case, no brackets, no trailing dot.
    Anything else (a URL, a port, spaces) is refused with ApplicationError."""
    host = raw.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ApplicationError(f"{raw.strip()[:100]!r} is not a host name.") from None
    if not _HOST_NAME.match(host):
        raise ApplicationError(
            f"{raw.strip()[:100]!r} is not a host name (give the name only, without scheme, "
            "port or path)."
        )
    return host


def allowed_hosts() -> set[str]:
    """Hosts webhook URLs may point at whatever they resolve to (environment and admin)."""
    hosts = set(WebhookAllowedHost.objects.values_list("host", flat=True))
    for raw in settings.WEBHOOK_ALLOWED_HOSTS:
        try:
            hosts.add(normalise_host(raw))
        except ApplicationError:
            continue
    return hosts


@transaction.atomic
def webhook_host_allow(*, host: str, actor: User, note: str = "") -> WebhookAllowedHost:
    """Allow webhook URLs to point at ``host`` even when it resolves to an internal address."""
    name = normalise_host(host)
    if WebhookAllowedHost.objects.filter(host=name).exists():
        raise ApplicationError(f"{name} is already allowed.")
    entry = WebhookAllowedHost.objects.create(
        host=name, note=" ".join(note.split())[:200], created_by=actor
    )
    audit_record(
        action=AuditEntry.Action.WEBHOOK_HOST_ALLOWED,
        target=entry,
        actor=actor,
        summary=f"Webhook URLs may point at {name} (internal addresses allowed)",
        details={"host": name, "note": entry.note},
    )
    return entry


@transaction.atomic
def webhook_host_remove(*, entry: WebhookAllowedHost, actor: User) -> None:
    """Stop allowing a host: webhook URLs on it are checked again from the next delivery."""
    entry = WebhookAllowedHost.objects.select_for_update().get(pk=entry.pk)
    audit_record(
        action=AuditEntry.Action.WEBHOOK_HOST_REMOVED,
        target=entry,
        actor=actor,
        summary=f"Webhook URLs on {entry.host} are checked again",
        details={"host": entry.host},
    )
    entry.delete()


# --- URLs ------------------------------------------------------------------------------------------


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise HostNotResolved(f"The webhook host {host} cannot be resolved.") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_webhook_url(url: str) -> bool:
    """Refuse (UnsafeURL) a URL that is not http(s) or whose host resolves to any internal
    address. Returns True when the host is on the allow list (then it is not resolved)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("The webhook URL must start with https:// or http:// and name a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = normalise_host(parts.hostname)
    except ValueError:
        raise UnsafeURL("The webhook URL has an invalid port.") from None
    except ApplicationError as exc:
        raise UnsafeURL(exc.message) from None
    if host in allowed_hosts():
        return True
    for address in _resolve(host, port):
        if not is_public_address(address):
            raise UnsafeURL(
                f"The webhook host {host} resolves to an internal address ({address}); an admin "
                "can allow the host under Settings > Webhook hosts."
            )
    return False


def check_peer(host: str, peer: str) -> None:
    """The address a connection to ``host`` reached must be public (re-checked after connect)."""
    address = ipaddress.ip_address(peer.split("%", 1)[0])
    if not is_public_address(address):
        raise UnsafeURL(f"The webhook host {host} reached an internal address ({address}).")


# --- Delivery --------------------------------------------------------------------------------------


def _check_connection(connection: http.client.HTTPConnection, target_host: str) -> None:
    # Through a proxy (a CONNECT tunnel) the peer is the proxy: the target's name was checked
    # before sending; a plain-HTTP proxy is recognised by its handler (``req.has_proxy()``).
    if getattr(connection, "_tunnel_host", None) or connection.sock is None:
        return
    try:
        check_peer(target_host, str(connection.sock.getpeername()[0]))
    except UnsafeURL:
        connection.close()
        raise


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, target_host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target_host = target_host

    def connect(self) -> None:
        super().connect()
        _check_connection(self, self.target_host)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, target_host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target_host = target_host

    def connect(self) -> None:
        super().connect()
        _check_connection(self, self.target_host)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, target_host: str) -> None:
        super().__init__()
        self.target_host = target_host

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if req.has_proxy():
            return super().http_open(req)
        factory = functools.partial(_GuardedHTTPConnection, target_host=self.target_host)
        return self.do_open(factory, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, target_host: str) -> None:
        super().__init__()
        self.target_host = target_host

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        factory = functools.partial(_GuardedHTTPSConnection, target_host=self.target_host)
        return self.do_open(factory, req, context=self._context)  # type: ignore[attr-defined]


def webhook_opener(
    url: str, *handlers: urllib.request.BaseHandler
) -> urllib.request.OpenerDirector:
    """An opener for one delivery to ``url``: the URL is checked again (UnsafeURL) and, unless
    its host is allowed, every connection checks the address it reached."""
    if check_webhook_url(url):
        return urllib.request.build_opener(*handlers)
    host = normalise_host(urlsplit(url).hostname or "")
    return urllib.request.build_opener(
        _GuardedHTTPHandler(host), _GuardedHTTPSHandler(host), *handlers
    )
