"""Webhook URLs may not reach internal addresses unless an admin allows the host."""

from __future__ import annotations

import ipaddress

import pytest

from supportdesk import urlguard
from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, WebhookAllowedHost
from supportdesk.urlguard import HostNotResolved, UnsafeURL
from tests.factories import send_chat
from tests.helpers import outbox_held, web
from tests.services import webhook_receiver
from tickets.models import Channel, Conversation
from tickets.services import (
    WebhookRejected,
    channel_set_webhook,
    conversation_reply,
    message_webhook_send,
)


@pytest.fixture
def no_allowed_hosts(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "2001:db8::1",
    ],
)
def test_internal_addresses_are_not_public(address):
    assert urlguard.is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address):
    assert urlguard.is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.0.0.5/hook",
        "http://[::1]:9000/hook",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/hook",
    ],
)
def test_urls_on_internal_addresses_are_refused(db, no_allowed_hosts, url):
    with pytest.raises(UnsafeURL):
        urlguard.check_webhook_url(url)


def test_a_host_that_does_not_resolve_is_refused(db, no_allowed_hosts):
    with pytest.raises(HostNotResolved, match=r"nothing\.invalid cannot be resolved"):
        urlguard.check_webhook_url("https://nothing.invalid/hook")


def test_a_public_address_passes(db, no_allowed_hosts):
    assert urlguard.check_webhook_url("https://93.184.216.34/hook") is False


def test_allowed_hosts_from_the_environment_and_the_admin(db, settings, admin_user):
    settings.WEBHOOK_ALLOWED_HOSTS = ["LocalHost."]
    assert urlguard.check_webhook_url("http://localhost:9000/hook") is True
    with pytest.raises(UnsafeURL):
        urlguard.check_webhook_url("http://10.0.0.5/hook")

    urlguard.webhook_host_allow(host="10.0.0.5", actor=admin_user, note="Relay  in the DC")

    assert urlguard.check_webhook_url("http://10.0.0.5/hook") is True
    entry = AuditEntry.objects.get(action="webhook_host.allowed")
    assert (entry.actor, entry.details) == (
        admin_user,
        {"host": "10.0.0.5", "note": "Relay in the DC"},
    )


def test_allowing_a_host_refuses_bad_input_and_duplicates(db, admin_user):
    for bad in ("http://x.example/", "x.example:80", "two words", "", "a" * 300):
        with pytest.raises(ApplicationError):
            urlguard.webhook_host_allow(host=bad, actor=admin_user)
    urlguard.webhook_host_allow(host="Hooks.Internal.Example", actor=admin_user)
    with pytest.raises(ApplicationError, match="already allowed"):
        urlguard.webhook_host_allow(host="hooks.internal.example.", actor=admin_user)
    assert list(WebhookAllowedHost.objects.values_list("host", flat=True)) == [
        "hooks.internal.example"
    ]
    assert AuditEntry.objects.filter(action="webhook_host.allowed").count() == 1


def test_removing_an_allowed_host_is_audited_and_checks_it_again(db, no_allowed_hosts, admin_user):
    entry = urlguard.webhook_host_allow(host="127.0.0.1", actor=admin_user)
    urlguard.webhook_host_remove(entry=entry, actor=admin_user)
    assert not WebhookAllowedHost.objects.exists()
    removed = AuditEntry.objects.get(action="webhook_host.removed")
    assert removed.details == {"host": "127.0.0.1"}
    with pytest.raises(UnsafeURL):
        urlguard.check_webhook_url("http://127.0.0.1/hook")


def test_setting_a_webhook_on_an_internal_address_changes_nothing(channels, no_allowed_hosts):
    chat = channels["chat"]
    channel_set_webhook(channel=chat, webhook_url="https://93.184.216.34/hook")
    with pytest.raises(UnsafeURL, match="internal address"):
        channel_set_webhook(channel=chat, webhook_url="http://127.0.0.1:9/hook")
    assert Channel.objects.get(pk=chat.pk).webhook_url == "https://93.184.216.34/hook"


def _queued_reply(channels, agent):
    send_chat(channels["chat"], visitor_id="v-1", session_id="sess-1", body="hello?")
    conversation = Conversation.objects.get()
    with outbox_held():
        return conversation, conversation_reply(conversation=conversation, author=agent, body="Hi")


def test_delivery_checks_the_url_again(channels, agent_a, settings):
    with webhook_receiver() as receiver:
        channel_set_webhook(channel=channels["chat"], webhook_url=receiver.url + "?k=s3cret")
        conversation, message = _queued_reply(channels, agent_a)
        settings.WEBHOOK_ALLOWED_HOSTS = []  # the allowance is withdrawn before delivery

        with pytest.raises(WebhookRejected):
            message_webhook_send(message_id=message.pk)

    assert receiver.received == []
    message.refresh_from_db()
    assert message.delivery_state == "failed"
    assert message.delivery_error == (
        "The webhook host 127.0.0.1 resolves to an internal address (127.0.0.1); an admin can "
        "allow the host under Settings > Webhook hosts."
    )
    page = web(agent_a).get(f"/conversations/{conversation.pk}/").content.decode()
    assert "s3cret" not in page


def test_delivery_refuses_a_name_that_now_connects_to_an_internal_address(
    channels, agent_a, settings, monkeypatch
):
    """DNS rebinding: the name looked public when checked, the connection reached loopback."""
    with webhook_receiver() as receiver:
        port = receiver.server_address[1]
        settings.WEBHOOK_ALLOWED_HOSTS = []
        monkeypatch.setattr(
            urlguard, "_resolve", lambda host, port: [ipaddress.ip_address("93.184.216.34")]
        )
        channel_set_webhook(channel=channels["chat"], webhook_url=f"http://localhost:{port}/hook")
        _, message = _queued_reply(channels, agent_a)

        with pytest.raises(WebhookRejected):
            message_webhook_send(message_id=message.pk)

    # the TCP connection was opened and closed at once: not a byte of the request was sent (the
    # test receiver records the empty read of that connection as a body b"")
    assert receiver.received in ([], [b""])
    message.refresh_from_db()
    assert message.delivery_state == "failed"
    assert message.delivery_error.startswith(
        "The webhook host localhost reached an internal address"
    )


def test_delivery_to_an_allowed_loopback_host_works(channels, agent_a):
    with webhook_receiver() as receiver:
        channel_set_webhook(channel=channels["chat"], webhook_url=receiver.url)
        _, message = _queued_reply(channels, agent_a)
        assert message_webhook_send(message_id=message.pk) is True
    message.refresh_from_db()
    assert (message.delivery_state, len(receiver.accepted)) == ("sent", 1)


def test_a_dns_failure_at_delivery_is_retried_not_final(channels, agent_a, settings, monkeypatch):
    channel_set_webhook(channel=channels["chat"], webhook_url="https://93.184.216.34/hook")
    _, message = _queued_reply(channels, agent_a)
    settings.WEBHOOK_ALLOWED_HOSTS = []

    def no_dns(host, port):
        raise HostNotResolved(f"The webhook host {host} cannot be resolved.")

    monkeypatch.setattr(urlguard, "_resolve", no_dns)
    with pytest.raises(OSError, match="cannot be resolved"):
        message_webhook_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.delivery_state == "queued"
    assert (
        message.delivery_error
        == "Network error: The webhook host 93.184.216.34 cannot be resolved."
    )
