"""Mailbox transport: IMAP sessions (imap-tools), OAuth2 token requests and the SMTP backend.

No state changes here: ``tickets.services.mailboxes`` decides what to import and records it; this
module only talks to the servers. Credentials are passed in by the caller already unsealed and
are never logged or put into an error message.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.core.mail.backends.smtp import EmailBackend
from imap_tools import AND, MailboxLoginError, MailMessageFlags, U
from imap_tools.mailbox import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.message import MailMessage

OAUTH_TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class OAuthPreset:
    authorize_url: str
    token_url: str
    scope: str
    imap_host: str
    smtp_host: str
    # Extra query parameters of the authorization request (Google hands out a refresh token
    # only with access_type=offline, and again only with prompt=consent).
    authorize_params: tuple[tuple[str, str], ...] = ()


OAUTH_PRESETS: dict[str, OAuthPreset] = {
    "google": OAuthPreset(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scope="https://mail.google.com/",
        imap_host="imap.gmail.com",
        smtp_host="smtp.gmail.com",
        authorize_params=(("access_type", "offline"), ("prompt", "consent")),
    ),
    "microsoft": OAuthPreset(
        authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        scope=(
            "https://outlook.office.com/IMAP.AccessAsUser.All "
            "https://outlook.office.com/SMTP.Send offline_access"
        ),
        imap_host="outlook.office365.com",
        smtp_host="smtp.office365.com",
    ),
}


class MailboxTransportError(ConnectionError):
    """The server or the token endpoint refused or could not be reached; the message is safe to
    show (it never holds a credential)."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # "tls", "starttls" or "none"
    username: str
    folder: str
    timeout: int
    password: str = ""
    access_token: str = ""  # set for XOAUTH2


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes


class _RawMessage(MailMessage):
    """Keeps the bytes as the server sent them; the desk's own parser reads them, so the
    library's parse of every message (half the cost of an import) is skipped."""

    def __init__(self, fetch_data: list[Any]) -> None:
        raw, raw_uid, raw_flags = self._get_message_data_parts(fetch_data)
        self.raw: bytes = raw
        self._raw_uid_data = raw_uid
        self._raw_flag_data = raw_flags


def xoauth2_string(username: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01"


class ImapSession:
    """One logged-in IMAP connection on one folder (a context manager)."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._box: BaseMailBox | None = None

    def __enter__(self) -> ImapSession:
        s = self.settings
        try:
            box: BaseMailBox
            if s.security == "tls":
                box = MailBox(
                    s.host, s.port, timeout=s.timeout, ssl_context=ssl.create_default_context()
                )
            elif s.security == "starttls":
                box = MailBoxStartTls(
                    s.host, s.port, timeout=s.timeout, ssl_context=ssl.create_default_context()
                )
            else:
                box = MailBoxUnencrypted(s.host, s.port, timeout=s.timeout)
            box.email_message_class = _RawMessage
            if s.access_token:
                box.xoauth2(s.username, s.access_token, initial_folder=None)
            else:
                box.login(s.username, s.password, initial_folder=None)
        except MailboxLoginError as exc:
            raise MailboxTransportError(
                f"The server refused the login for {s.username!r}: {_server_text(exc)}"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise MailboxTransportError(
                f"Cannot connect to {s.host}:{s.port}: {exc.__class__.__name__}: {exc}"
            ) from exc
        except Exception as exc:  # imaplib.IMAP4.error and imap-tools' own errors
            raise MailboxTransportError(f"IMAP error at {s.host}:{s.port}: {exc}") from exc
        self._box = box
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._box is not None:
            # A dead connection has nothing to log out of.
            with contextlib.suppress(Exception):
                self._box.logout()
            self._box = None

    @property
    def box(self) -> BaseMailBox:
        assert self._box is not None, "use ImapSession as a context manager"
        return self._box

    def select(self, folder: str) -> int:
        """Select ``folder`` and return its UIDVALIDITY."""
        try:
            status = self.box.folder.status(folder, ["UIDVALIDITY", "MESSAGES"])
            self.box.folder.set(folder)
        except Exception as exc:
            raise MailboxTransportError(f"Cannot open the folder {folder!r}: {exc}") from exc
        return int(status["UIDVALIDITY"])

    def uids_after(self, last_uid: int, *, since: date | None) -> list[int]:
        """UIDs above ``last_uid`` (and received on or after ``since``), ascending."""
        uids = U(str(last_uid + 1), "*")
        criteria = AND(uid=uids, date_gte=since) if since else AND(uid=uids)
        try:
            found = self.box.uids(criteria)
        except Exception as exc:
            raise MailboxTransportError(f"Search failed: {exc}") from exc
        # "UID n:*" always answers the highest UID, even when it is below n (RFC 3501 6.4.8).
        return sorted(uid for uid in (int(u) for u in found) if uid > last_uid)

    def fetch(self, uids: Sequence[int]) -> Iterator[FetchedMessage]:
        """The raw messages of ``uids`` in one FETCH (BODY.PEEK: nothing is marked seen)."""
        if not uids:
            return
        try:
            for message in self.box.fetch(
                uid_list=[str(u) for u in uids], mark_seen=False, bulk=True
            ):
                assert isinstance(message, _RawMessage)
                yield FetchedMessage(uid=int(message.uid or 0), raw=message.raw)
        except MailboxTransportError:
            raise
        except Exception as exc:
            raise MailboxTransportError(f"Fetch failed: {exc}") from exc

    def after_import(self, uids: Sequence[int], *, action: str, folder: str) -> None:
        """Mark seen or move the imported messages; "leave" does nothing. Never deletes."""
        if not uids or action == "leave":
            return
        uid_list = [str(u) for u in uids]
        try:
            if action == "seen":
                self.box.flag(uid_list, MailMessageFlags.SEEN, True)
            elif action == "move":
                if not self.box.folder.exists(folder):
                    self.box.folder.create(folder)
                self.box.move(uid_list, folder)
        except Exception as exc:
            raise MailboxTransportError(f"Cannot {action} the imported messages: {exc}") from exc

    def folder_exists(self, folder: str) -> bool:
        try:
            return bool(self.box.folder.exists(folder))
        except Exception as exc:
            raise MailboxTransportError(f"Cannot list folders: {exc}") from exc


def _server_text(exc: Exception) -> str:
    text = str(exc)
    # imap-tools puts the server's answer into the message; it holds no credential.
    return text.replace("\r", " ").replace("\n", " ")[:300]


@dataclass(frozen=True)
class TokenAnswer:
    access_token: str
    expires_in: int
    refresh_token: str  # "" when the provider keeps the old one


def oauth_token_request(*, token_url: str, fields: dict[str, str]) -> TokenAnswer:
    """POST a form to an OAuth2 token endpoint (RFC 6749 section 4.1.3 / 6) and read the answer."""
    body = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(
        token_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=OAUTH_TIMEOUT_SECONDS) as response:
            payload = json.loads(response.read(1_000_000) or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read(10_000) or b"{}")
        except ValueError:
            error = {}
        described = error.get("error_description") or error.get("error") or exc.reason
        raise MailboxTransportError(
            f"The token endpoint refused the request ({exc.code}): {described}"
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MailboxTransportError(f"Cannot reach the token endpoint: {exc}") from exc
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise MailboxTransportError("The token endpoint answered without an access token.")
    try:
        expires_in = int(payload.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600
    refresh = payload.get("refresh_token")
    return TokenAnswer(
        access_token=access_token,
        expires_in=expires_in,
        refresh_token=refresh if isinstance(refresh, str) else "",
    )


def oauth_authorize_url(
    *,
    authorize_url: str,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    """The provider URL an admin is sent to (authorization-code grant)."""
    query = urllib.parse.urlencode(
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", state),
            *extra,
        ]
    )
    separator = "&" if "?" in authorize_url else "?"
    return f"{authorize_url}{separator}{query}"


class MailboxSmtpBackend(EmailBackend):
    """Django's SMTP backend, logging in with XOAUTH2 when given an access token."""

    def __init__(self, *, access_token: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.access_token = access_token

    def open(self) -> bool | None:
        if not self.access_token:
            return super().open()
        username, self.username = self.username, ""  # no password login in super().open()
        try:
            opened = super().open()
        finally:
            self.username = username
        if opened and self.connection is not None:
            auth = xoauth2_string(self.username, self.access_token)
            try:
                self.connection.ehlo_or_helo_if_needed()
                self.connection.auth("XOAUTH2", lambda challenge=None: auth)
            except Exception:
                self.close()
                raise
        return opened
