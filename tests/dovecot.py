"""A real IMAP server for tests: Debian's Dovecot on a free loopback port, throwaway config.

The recipe is ../shared/ECOSYSTEM.md ("Dovecot for tests"): run as root with Debian's
``dovecot``/``dovenull`` users; the mail folder belongs to ``dovecot``. ``.ci/run`` installs
``dovecot-imapd``. With ``oauth_introspection_url`` the server also takes XOAUTH2 logins and asks
that URL (RFC 7662 introspection) whether a bearer token is good.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import free_port, wait_for

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

USER = "support@desk.test"
PASSWORD = "secret-imap-pw"


@dataclass
class Dovecot:
    directory: Path
    port: int  # plain IMAP (STARTTLS too when started with tls=True)
    users: dict[str, str] = field(default_factory=dict)
    tls_port: int = 0  # implicit TLS (imaps), with tls=True
    cert: Path | None = None  # the self-signed certificate (for 127.0.0.1) clients must trust

    @property
    def config(self) -> Path:
        return self.directory / "dovecot.conf"

    def start(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.config)], check=True, timeout=30)
        wait_for(self.answers, timeout=20, what="Dovecot to accept connections")

    def stop(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.config), "stop"], check=False, timeout=30)

        def down() -> bool:
            return not self.answers()

        wait_for(down, timeout=20, what="Dovecot to stop")

    def answers(self) -> bool:
        try:
            with imaplib.IMAP4("127.0.0.1", self.port, timeout=2):
                return True
        except OSError:
            return False

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextmanager
    def imap(self, user: str = USER) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(user, self.users[user])
        try:
            yield client
        finally:
            client.logout()

    def append(self, *messages: bytes, folder: str = "INBOX", user: str = USER) -> None:
        """APPEND messages (the quickest way to put mail in the box)."""
        with self.imap(user) as client:
            for raw in messages:
                typ, data = client.append(folder, "", None, raw)
                assert typ == "OK", data

    def uids(self, folder: str = "INBOX", user: str = USER) -> list[int]:
        with self.imap(user) as client:
            client.select(folder)
            typ, data = client.uid("SEARCH", "ALL")
            assert typ == "OK", data
            return [int(u) for u in data[0].split()]

    def flags(self, folder: str = "INBOX", user: str = USER) -> dict[int, str]:
        with self.imap(user) as client:
            client.select(folder)
            typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
            assert typ == "OK", data
            found = {}
            for line in data:
                if not line:
                    continue
                text = line.decode() if isinstance(line, bytes) else str(line)
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                found[uid] = text.split("FLAGS (")[1].split(")")[0]
            return found

    def uidvalidity(self, folder: str = "INBOX", user: str = USER) -> int:
        with self.imap(user) as client:
            typ, data = client.status(folder, "(UIDVALIDITY)")
            assert typ == "OK", data
            return int(data[0].decode().split("UIDVALIDITY ")[1].rstrip(")"))

    def reset_uidvalidity(self, folder: str = "INBOX", user: str = USER) -> int:
        """Renumber the folder the way a restored or migrated server does: a new UIDVALIDITY
        and new UIDs from 1 for the same messages."""
        before = self.uidvalidity(folder, user)
        self.stop()
        maildir = self.directory / "mail" / user
        if folder != "INBOX":
            maildir = maildir / f".{folder}"
        for path in maildir.glob("dovecot*"):
            if path.is_file():
                path.unlink()
        # Dovecot takes the clock as the new UIDVALIDITY: make sure it is another second.
        while int(time.time()) <= before:
            time.sleep(0.1)
        self.start()
        after = self.uidvalidity(folder, user)
        assert after != before
        return after


CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/run
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
log_path = {dir}/dovecot.log
mail_location = maildir:{dir}/mail/%u
default_internal_user = dovecot
default_login_user = dovenull
default_internal_group = dovecot
first_valid_uid = 100
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users
}}
{oauth_passdb}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={dir}/mail/%u
}}
"""

OAUTH_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf.ext
}}
"""

OAUTH_CONF = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def require_dovecot() -> None:
    if not os.path.exists(DOVECOT):
        pytest.fail(
            "Dovecot is not installed: apt-get install dovecot-imapd (.ci/run does it).",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail("The Dovecot test server runs as root (Debian's dovecot user).", pytrace=False)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextmanager
def dovecot_server(
    users: dict[str, str] | None = None, *, oauth_introspection_url: str = "", tls: bool = False
) -> Iterator[Dovecot]:
    """Start Dovecot for the block; its log is printed if the block failed.

    ``tls``: also imaps on ``tls_port`` and STARTTLS on ``port``, with a self-signed certificate
    for 127.0.0.1 in ``cert`` (point ``SSL_CERT_FILE`` at it to trust it).
    """
    require_dovecot()
    directory = Path(tempfile.mkdtemp(prefix="sd-dovecot-"))
    server = Dovecot(
        directory=directory,
        port=free_port(),
        users=users or {USER: PASSWORD},
        tls_port=free_port(),
    )
    ssl_setting = "ssl = no"
    if tls:
        server.cert, key = _self_signed(directory)
        ssl_setting = f"ssl = yes\nssl_cert = <{server.cert}\nssl_key = <{key}"
    (directory / "run").mkdir()
    (directory / "mail").mkdir()
    (directory / "users").write_text(
        "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in server.users.items())
    )
    mechanisms = "plain login"
    oauth_passdb = ""
    if oauth_introspection_url:
        mechanisms += " xoauth2 oauthbearer"
        oauth_passdb = OAUTH_PASSDB.format(dir=directory)
        (directory / "oauth2.conf.ext").write_text(OAUTH_CONF.format(url=oauth_introspection_url))
    server.config.write_text(
        CONFIG.format(
            dir=directory,
            port=server.port,
            tls_port=server.tls_port,
            ssl=ssl_setting,
            mechanisms=mechanisms,
            oauth_passdb=oauth_passdb,
        )
    )
    shutil.chown(directory / "mail", "dovecot", "dovecot")
    os.chmod(directory, 0o755)
    try:
        server.start()
        yield server
    except BaseException:
        print(f"----- Dovecot log -----\n{server.log()}\n----- end -----")
        raise
    finally:
        server.stop() if server.answers() else None
        shutil.rmtree(directory, ignore_errors=True)
