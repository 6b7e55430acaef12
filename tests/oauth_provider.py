"""A stand-in OAuth2 provider for tests (the outside world): token and introspection endpoints."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.dovecot import USER


class OAuthProvider(ThreadingHTTPServer):
    """The provider's token endpoint and (for Dovecot) its RFC 7662 introspection endpoint."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OAuthHandler)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.valid_tokens: set[str] = set()
        self.issued = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OAuthHandler(BaseHTTPRequestHandler):
    server: OAuthProvider

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.server.requests.append((self.path, form))
        if self.path == "/token":
            self.server.issued += 1
            token = f"access-{self.server.issued}"
            self.server.valid_tokens.add(token)
            answer: dict[str, Any] = {
                "access_token": token,
                "expires_in": 3600,
                "token_type": "Bearer",
            }
            if form.get("grant_type") == "authorization_code":
                answer["refresh_token"] = "refresh-from-code"
            self._json(200, answer)
        elif self.path == "/introspect":
            active = form.get("token") in self.server.valid_tokens
            self._json(200, {"active": active, "username": USER} if active else {"active": False})
        else:
            self._json(404, {"error": "not_found"})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def oauth_provider_server() -> Iterator[OAuthProvider]:
    provider = OAuthProvider()
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    try:
        yield provider
    finally:
        provider.shutdown()
        provider.server_close()
