"""Every column with choices has a CHECK constraint built from its enum (supportdesk.models.choices_check).

A value the enum does not know is refused by the database itself, whatever wrote it (a bulk
update, raw SQL, the benchmark's COPY), and a value added to the enum makes makemigrations
write the matching migration.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.db.models import CheckConstraint

from tests.factories import send_email
from tickets.models import Event, Message

APPS = ["supportdesk", "tickets", "surveys", "quality", "metrics"]


def _columns_with_choices():
    for app in APPS:
        for model in apps.get_app_config(app).get_models():
            for field in model._meta.fields:
                if field.choices and not field.is_relation:
                    yield model, field


def test_every_column_with_choices_has_a_check_built_from_its_enum():
    missing = []
    for model, field in _columns_with_choices():
        allowed = [value for value, _label in field.flatchoices]
        if field.blank and "" not in allowed:
            allowed = ["", *allowed]
        wanted = [(f"{field.name}__in", allowed)]
        found = [
            constraint
            for constraint in model._meta.constraints
            if isinstance(constraint, CheckConstraint)
            and list(constraint.condition.children) == wanted
            and not constraint.condition.negated
        ]
        if len(found) != 1:
            missing.append(f"{model._meta.label}.{field.name}")
    assert missing == []


@pytest.mark.django_db
def test_the_database_refuses_a_value_the_enum_does_not_know(channels):
    message = Message.objects.get(pk=send_email(channels["email"]).message_id)
    event = Event.objects.filter(message=message).first() or Event.objects.first()

    for model, pk, column in [
        (Message, message.pk, "delivery_state"),
        (Event, event.pk, "kind"),
    ]:
        table = model._meta.db_table
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", ["bogus", pk])

    assert Message.objects.get(pk=message.pk).delivery_state == message.delivery_state
    assert Event.objects.get(pk=event.pk).kind == event.kind
