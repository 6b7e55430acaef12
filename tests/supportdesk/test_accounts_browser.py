"""Staff accounts as a new admin and a new agent meet them, in Debian's Chromium.

Mail is Django's locmem backend (tests/conftest.py), read in the same process as the live
server; single sign-on goes to a real OpenID Connect provider on a loopback port (tests/oidc.py).
"""

from __future__ import annotations

import copy
import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.core.cache import cache
from playwright.sync_api import Page, expect

from supportdesk.models import AuditEntry, User
from tests import oidc
from tests.browser import login, screenshot, watch_console

NEW_PASSWORD = "a long new passphrase 42"
LINK = re.compile(r"https?://\S+/accounts/password/reset/key/\S+")


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def site(settings, live_server):
    settings.SITE_URL = live_server.url
    return live_server


def totp_now(secret: str) -> str:
    counter = next(iter(yield_hotp_counters_from_time()))
    return format_hotp_value(hotp_value(secret, counter))


def mailed_link(to: str) -> str:
    messages = [m for m in mail.outbox if m.to == [to]]
    assert messages, f"no mail to {to}"
    match = LINK.search(messages[-1].body)
    assert match is not None, messages[-1].body
    return match.group(0)


def sign_out(page: Page) -> None:
    page.context.clear_cookies()


def sign_in_with_password(page: Page, site, email: str, password: str) -> None:
    page.goto(f"{site.url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_invited_agent_sets_a_password_enrols_totp_and_signs_in_with_a_code(
    page, site, settings, admin_user, team_a
):
    settings.MFA_REQUIRED = "everyone"
    # The admin enrolled already (MFA_REQUIRED applies to them too).
    Authenticator.objects.create(
        user=admin_user, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"}
    )
    problems = watch_console(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{site.url}/login/")
    page.get_by_label("Email").fill(admin_user.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Code").fill(totp_now("JBSWY3DPEHPK3PXP"))
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("link", name="Queue")).to_be_visible()

    page.goto(f"{site.url}/settings/staff/")
    page.get_by_label("Email", exact=True).fill("Nina.New@Desk.Example")
    page.get_by_label("Name", exact=True).fill("Nina New")
    page.get_by_label("Role").select_option("agent")
    page.get_by_role("checkbox", name="Team A").check()
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to nina.new@desk.example.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="nina.new@desk.example")
    expect(row).to_contain_text("Invited")
    expect(row).to_contain_text("Team A")
    screenshot(page, "staff-and-teams")

    nina = User.objects.get(email="nina.new@desk.example")
    assert (nina.role, nina.is_active, nina.has_usable_password()) == ("agent", True, False)
    assert list(nina.teams.values_list("name", flat=True)) == ["Team A"]
    assert list(
        AuditEntry.objects.filter(target_id=str(nina.pk)).values_list("action", "actor_email")
    ) == [(AuditEntry.Action.STAFF_INVITED, admin_user.email)]
    invitation = [m for m in mail.outbox if m.to == ["nina.new@desk.example"]]
    assert len(invitation) == 1
    assert invitation[0].subject.startswith("You are invited to")
    link = mailed_link("nina.new@desk.example")

    # Nina opens the link in her own browser, sets a password.
    sign_out(page)
    page.goto(link)
    page.get_by_label("New Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change Password").click()
    expect(page.get_by_text("Your password is now changed.")).to_be_visible()
    # The link worked once.
    page.goto(link)
    expect(page.get_by_role("heading", name="Bad Token")).to_be_visible()

    # First sign-in: nothing but the enrolment page until she has a second factor.
    sign_in_with_password(page, site, "nina.new@desk.example", NEW_PASSWORD)
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    page.goto(f"{site.url}/")
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    secret = page.locator("#authenticator_secret").input_value()
    screenshot(page, "totp-enrolment")
    page.get_by_label("Authenticator code").fill(totp_now(secret))
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_text("Recovery Codes", exact=False).first).to_be_visible()
    assert set(Authenticator.objects.filter(user=nina).values_list("type", flat=True)) == {
        Authenticator.Type.TOTP,
        Authenticator.Type.RECOVERY_CODES,
    }
    page.goto(f"{site.url}/")
    expect(page.get_by_role("link", name="Queue")).to_be_visible()

    # Next sign-in asks for the code; a wrong one is refused, the right one lets her in.
    sign_out(page)
    sign_in_with_password(page, site, "nina.new@desk.example", NEW_PASSWORD)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    wrong = "000000" if totp_now(secret) != "000000" else "111111"
    page.get_by_label("Code").fill(wrong)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_text("Incorrect code.")).to_be_visible()
    page.get_by_label("Code").fill(totp_now(secret))
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("link", name="Queue")).to_be_visible()
    expect(page.locator(".account-email")).to_have_text("nina.new@desk.example")
    assert problems == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_forgotten_password_is_reset_by_email(page, site, agent_a):
    problems = watch_console(page)
    page.goto(f"{site.url}/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("alice@desk.example")
    page.get_by_role("button", name="Reset My Password").click()
    expect(page.get_by_role("heading", name="Password Reset")).to_be_visible()
    link = mailed_link("alice@desk.example")
    # An unknown address gets the same answer and no account is revealed.
    page.goto(f"{site.url}/accounts/password/reset/")
    page.get_by_label("Email").fill("nobody@desk.example")
    page.get_by_role("button", name="Reset My Password").click()
    expect(page.get_by_role("heading", name="Password Reset")).to_be_visible()

    page.goto(link)
    page.get_by_label("New Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change Password").click()
    expect(page.get_by_text("Your password is now changed.")).to_be_visible()

    sign_in_with_password(page, site, "alice@desk.example", "correct horse battery")
    expect(page.get_by_text("not correct")).to_be_visible()
    login(page, site, agent_a, password=NEW_PASSWORD)
    expect(page.get_by_role("link", name="Queue")).to_be_visible()
    assert problems == []


@pytest.fixture
def provider(settings):
    idp, server = oidc.start(client_id="supportdesk", client_secret="idp-secret")
    apps = [
        {
            "provider_id": "corp",
            "name": "Corp ID",
            "client_id": "supportdesk",
            "secret": "idp-secret",
            "settings": {"server_url": idp.url},
        }
    ]
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": apps}
    }
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"] = ["'self'", idp.url]
    settings.CONTENT_SECURITY_POLICY = policy
    yield idp
    server.shutdown()
    server.server_close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_single_sign_on_lets_in_an_invited_agent_and_refuses_an_unknown_one(
    page, site, provider, admin_user, team_a
):
    from supportdesk.services import staff_invite

    problems = watch_console(page)
    nina = staff_invite(
        email="nina@desk.example", role="agent", team_ids=[team_a.pk], actor=admin_user
    )

    # Someone the desk does not know: refused with a clear page, nothing created.
    provider.identity = {"sub": "u-404", "email": "mallory@corp.example", "email_verified": True}
    page.goto(f"{site.url}/login/")
    page.get_by_role("button", name="Sign in with Corp ID").click()
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.get_by_text("no member of staff has that address")).to_be_visible()
    assert User.objects.filter(email="mallory@corp.example").count() == 0
    assert SocialAccount.objects.count() == 0

    # The provider vouches for an address of an invited agent but not as verified: refused.
    provider.identity = {"sub": "u-1", "email": "nina@desk.example", "email_verified": False}
    page.goto(f"{site.url}/login/")
    page.get_by_role("button", name="Sign in with Corp ID").click()
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    assert SocialAccount.objects.count() == 0

    # Verified: the invited agent is in, no password ever set.
    provider.identity = {
        "sub": "u-1",
        "email": "Nina@Desk.Example",
        "email_verified": True,
        "name": "Nina",
    }
    page.goto(f"{site.url}/login/")
    page.get_by_role("button", name="Sign in with Corp ID").click()
    expect(page.get_by_role("link", name="Queue")).to_be_visible()
    expect(page.locator(".account-email")).to_have_text("nina@desk.example")
    account = SocialAccount.objects.get()
    assert (account.user_id, account.provider, account.uid) == (nina.pk, "corp", "u-1")
    assert User.objects.count() == 2
    assert provider.token_requests == 3
    # The two refusals are 403 pages, which Chromium reports as failed loads; nothing else.
    assert [p for p in problems if "status of 403" not in p] == []
