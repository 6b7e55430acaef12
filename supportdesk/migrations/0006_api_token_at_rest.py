"""API tokens at rest: a digest and a sealed copy, in place of DRF's plain-text token table."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def move_tokens(apps, schema_editor):
    from supportdesk.sealing import seal, secret_digest

    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("supportdesk", "ApiToken")
    for token in Token.objects.order_by("created", "key").iterator():
        ApiToken.objects.create(
            user_id=token.user_id,
            digest=secret_digest(token.key),
            sealed=seal(token.key),
            created_at=token.created,
        )
    # The keys in clear go: DRF's table stays (its app stays installed for its migrations), empty.
    Token.objects.all().delete()


class Migration(migrations.Migration):
    # The plain text is gone once this runs: there is no way back.

    dependencies = [
        ("supportdesk", "0005_limits_audit_entry"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(editable=False, max_length=64, unique=True)),
                ("sealed", models.TextField(editable=False)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_token",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.RunPython(move_tokens),
    ]
