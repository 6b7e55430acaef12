"""Channel secrets at rest: a digest and a sealed copy replace the plain-text column."""

from django.db import migrations, models


def seal_secrets(apps, schema_editor):
    from supportdesk.sealing import seal, secret_digest

    Channel = apps.get_model("tickets", "Channel")
    for channel in Channel.objects.only("pk", "secret").iterator():
        Channel.objects.filter(pk=channel.pk).update(
            secret_digest=secret_digest(channel.secret), secret_sealed=seal(channel.secret)
        )


class Migration(migrations.Migration):
    # The plain text is gone once this runs: there is no way back.

    dependencies = [
        ("tickets", "0009_message_claim_and_claimed_email"),
    ]

    operations = [
        migrations.AddField(
            model_name="channel",
            name="secret_digest",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="channel",
            name="secret_sealed",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.RunPython(seal_secrets),
        migrations.RemoveField(model_name="channel", name="secret"),
        migrations.AlterField(
            model_name="channel",
            name="secret_digest",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
    ]
