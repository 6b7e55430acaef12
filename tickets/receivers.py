"""Anymail's inbound signal: provider webhooks at /anymail/<provider>/inbound/ land here."""

from typing import Any

from anymail.signals import AnymailInboundEvent, inbound
from django.dispatch import receiver


@receiver(inbound, dispatch_uid="tickets.inbound_email")
def handle_inbound_email(
    sender: Any, event: AnymailInboundEvent, esp_name: str, **kwargs: Any
) -> None:
    from tickets.services import inbound_email_from_anymail

    inbound_email_from_anymail(message=event.message, esp_name=esp_name)
