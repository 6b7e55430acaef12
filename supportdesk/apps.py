from django.apps import AppConfig


class SupportdeskConfig(AppConfig):
    name = "supportdesk"
    verbose_name = "Staff and platform"

    def ready(self) -> None:
        from django.conf import settings

        from supportdesk import extensions

        extensions.register_nav(
            "Audit log", "audit-log", roles={"manager", "admin"}, order=90, more=True
        )
        extensions.register_nav("My signature", "signature", order=95, more=True)
        extensions.register_nav(
            "Email templates", "mail-templates", roles={"admin"}, order=96, more=True
        )
        extensions.register_nav(
            "Staff and teams", "staff-list", roles={"admin"}, order=97, more=True
        )
        extensions.register_nav("Sign-in and security", "mfa_index", order=98, more=True)
        extensions.register_nav("Settings", "settings-index", roles={"admin"}, order=89, more=True)
        for label, url_name, description, order in (
            ("Staff and teams", "staff-list", "Invite people, roles, teams, deactivation.", 10),
            ("Email templates", "mail-templates", "The wording of the desk's emails.", 50),
            (
                "Webhook hosts",
                "webhook-hosts",
                "Hosts webhook URLs may point at although they resolve to internal addresses.",
                70,
            ),
            ("Audit log", "audit-log", "Who changed what, and when.", 90),
        ):
            extensions.register_settings_page(label, url_name, description, order=order)

        # Directories the embedded defaults write to (SQLite, filesystem broker, mail files).
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        for key in ("data_folder_in", "processed_folder"):
            folder = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get(key)
            if folder:
                from pathlib import Path

                Path(folder).mkdir(parents=True, exist_ok=True)
