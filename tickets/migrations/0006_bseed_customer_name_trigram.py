from django.db import migrations

# Queue search by customer name: "name contains the query" with a trigram index on PostgreSQL.


def trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS tickets_customer_name_trgm ON tickets_customer "
            "USING gin (UPPER(name::text) gin_trgm_ops)"
        )


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS tickets_customer_name_trgm")


class Migration(migrations.Migration):
    dependencies = [("tickets", "0005_bseed_queue_count_indexes")]

    operations = [migrations.RunPython(trigram_index, drop_trigram_index)]
