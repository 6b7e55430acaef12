"""Anymail's signals: provider webhooks at /anymail/<provider>/inbound/ and .../tracking/."""

from typing import Any

from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking
from django.dispatch import receiver

# Provider events that mean "this address does not take mail" (a soft "deferred" does not).
UNDELIVERABLE_EVENTS = frozenset({"bounced", "rejected"})


@receiver(inbound, dispatch_uid="tickets.inbound_email")
def handle_inbound_email(
    sender: Any, event: AnymailInboundEvent, esp_name: str, **kwargs: Any
) -> None:
    from tickets.services.inbound_queue import inbound_email_from_anymail_or_accept

    inbound_email_from_anymail_or_accept(message=event.message, esp_name=esp_name)


@receiver(tracking, dispatch_uid="tickets.tracking_event")
def handle_tracking_event(
    sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    """A provider reports a bounce or a rejection: the address is marked undeliverable.

    The webhook is authenticated (basic auth, and the provider's signature where it has one),
    so its word is taken without the Message-ID proof an emailed DSN needs.
    """
    from tickets.services import identity_mark_undeliverable

    if event.event_type in UNDELIVERABLE_EVENTS and event.recipient:
        identity_mark_undeliverable(address=event.recipient, source=f"provider:{esp_name.lower()}")
