"""Seed the default saved replies (tickets/saved_reply_defaults.py) on a new desk."""

from django.db import migrations

from tickets.saved_reply_defaults import DEFAULT_SAVED_REPLIES


def seed(apps, schema_editor):
    SavedReply = apps.get_model("tickets", "SavedReply")
    for title, body in DEFAULT_SAVED_REPLIES:
        SavedReply.objects.get_or_create(title=title, defaults={"body": body})


def unseed(apps, schema_editor):
    SavedReply = apps.get_model("tickets", "SavedReply")
    SavedReply.objects.filter(title__in=[title for title, _ in DEFAULT_SAVED_REPLIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("tickets", "0002_workspace")]

    operations = [migrations.RunPython(seed, unseed)]
