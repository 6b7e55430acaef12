"""How staff API clients prove who they are: ``Authorization: Token <key>``.

The header and its answers are DRF's TokenAuthentication's; the key is looked up by its digest
and compared in constant time (supportdesk/sealing.py), since the table holds no key in clear.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from supportdesk.models import ApiToken, User
from supportdesk.sealing import digests_match, secret_digest


class ApiTokenAuthentication(TokenAuthentication):
    model = ApiToken

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        token = ApiToken.objects.select_related("user").filter(digest=secret_digest(key)).first()
        if token is None or not digests_match(token.digest, key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token
