"""Staff accounts on django-allauth: closed sign-up, SSO by verified email, required second factor.

- ``AccountAdapter``: nobody signs up; staff are invited by an admin (``services.staff_invite``)
  or created with ``manage.py create_staff``.
- ``SocialAccountAdapter``: an OpenID Connect sign-in logs in the active staff member whose
  address the provider says is verified; an unknown or deactivated address is refused with a
  page that says so, and no account is ever created by a sign-in.
- ``RequireSecondFactorMiddleware``: with ``MFA_REQUIRED`` = "admins" or "everyone", a signed-in
  member of staff without TOTP sees only the enrolment pages (and can log out) until they enrol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from allauth.account import app_settings as allauth_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.login import get_authentication_records
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.models import Authenticator
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from supportdesk.models import User


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """A sign-in within the last ACCOUNT_REAUTHENTICATION_TIMEOUT counts as a confirmation:
        enrolling TOTP straight after the first sign-in does not ask for the password again."""
        request = getattr(self, "request", None)
        user = getattr(request, "user", None)
        if request is not None and user is not None and user.is_authenticated:
            records = get_authentication_records(request, user)
            timeout = allauth_settings.REAUTHENTICATION_TIMEOUT
            if records and time.time() - float(records[-1]["at"]) < timeout:
                return False
        required: bool = super().is_reauthentication_required(app=app, **kwargs)
        return required


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return False

    def populate_user(
        self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]
    ) -> User:
        """Nothing to fill: a sign-in never creates an account (and names come from the desk)."""
        user: User = sociallogin.user
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Refuse a sign-in that matched no active staff member (allauth looked it up already:
        by a connected account, or by an address the provider marks verified)."""
        user = sociallogin.user if sociallogin.is_existing else None
        if user is not None and user.is_active:
            return
        verified = sorted({e.email.lower() for e in sociallogin.email_addresses if e.verified})
        raise ImmediateHttpResponse(
            render(
                request,
                "account/sso_refused.html",
                {
                    "emails": verified,
                    "deactivated": user is not None,
                    "provider": sociallogin.account.get_provider().name,
                },
                status=403,
            )
        )


def second_factor_required(user: User) -> bool:
    """Whether MFA_REQUIRED asks this member of staff for a second factor."""
    required = settings.MFA_REQUIRED
    return required == "everyone" or (required == "admins" and user.is_admin)


# Paths a member of staff who must enrol may still open.
_ENROLMENT_PREFIXES = (
    "/accounts/2fa/",
    "/accounts/reauthenticate/",
    "/accounts/logout/",
    "/logout/",
    "/static/",
)


class RequireSecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user: Any = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(("/api/", *_ENROLMENT_PREFIXES))
            and second_factor_required(user)
            and not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
        ):
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)
