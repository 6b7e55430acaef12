"""A password hasher for the test suite only: real PBKDF2 hashes, computed once per password.

Django's PBKDF2 runs a million iterations (about half a second on the CI machine), and the suite
creates and signs in staff thousands of times. This hasher writes the same ``pbkdf2_sha256``
hashes as production's (so a server or worker started by a test, with production settings, checks
them as usual) but with one fixed salt, so the hash of a password is computed once per process
and remembered. Never used outside ``tests/`` (``tests/conftest.py`` installs it).
"""

from __future__ import annotations

import functools

from django.contrib.auth.hashers import PBKDF2PasswordHasher

# 22 characters of [A-Za-z0-9]: as much entropy as Django asks of a salt.
FIXED_SALT = "supportdeskTestSalt123"


@functools.lru_cache(maxsize=256)
def _encode(password: str, salt: str, iterations: int) -> str:
    return PBKDF2PasswordHasher().encode(password, salt, iterations)


class RememberingPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    def salt(self) -> str:
        return FIXED_SALT

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        return _encode(password, salt, iterations or self.iterations)
