"""``manage.py create_staff EMAIL --role agent|manager|admin --team NAME [--password P]
[--rotate-token]``.

Creates or updates a staff account through ``staff_create_or_update`` and prints its API token
alone on the last line, so that scripts can take it with ``| tail -n 1``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from supportdesk.models import User
from supportdesk.services import staff_create_or_update, staff_token_rotate

ROLES = ", ".join(User.Role.values)


class Command(BaseCommand):
    help = "Create or update a staff account and print its API token on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="the staff member's email address (their login)")
        parser.add_argument(
            "--role",
            help=f"one of {ROLES}; default: agent for a new account, unchanged for an existing one",
        )
        parser.add_argument(
            "--team",
            action="append",
            default=[],
            dest="teams",
            metavar="NAME",
            help="a team to join (repeat for several); unknown teams are created, none are left",
        )
        parser.add_argument("--password", help="set this password (default: keep / none)")
        parser.add_argument("--name", dest="full_name", help='full name, e.g. "Ada Lovelace"')
        parser.add_argument(
            "--rotate-token",
            action="store_true",
            help="replace the account's API token; the old one stops working at once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"{options['email']!r} is not a valid email address.") from exc

        existing = User.objects.filter(email=email).first()
        role = options["role"] or (existing.role if existing else User.Role.AGENT)
        if role not in User.Role.values:
            raise CommandError(f"--role must be one of {ROLES}, not {role!r}.")
        teams = [name.strip() for name in options["teams"] if name.strip()]

        password = options["password"]
        if password:
            try:
                validate_password(password, user=existing)
            except ValidationError as exc:
                raise CommandError("Password rejected: " + " ".join(exc.messages)) from exc

        user, token = staff_create_or_update(
            email=email,
            role=role,
            team_names=teams,
            password=password or None,
            full_name=options["full_name"],
        )
        if options["rotate_token"] and existing is not None:
            token = staff_token_rotate(user=user)
        team_list = ", ".join(user.teams.order_by("name").values_list("name", flat=True)) or "none"
        verb = "Updated" if existing else "Created"
        self.stdout.write(f"{verb} {user.role} {user.email} (teams: {team_list}). API token:")
        if existing is None and not password:
            self.stderr.write(
                "No password set: this account can use the API token, not the web login."
            )
        self.stdout.write(token.key)
