"""Typed requests for views that know who is asking.

``request.user`` is ``User | AnonymousUser`` to the type checker. Behind ``@login_required`` (the
staff workspace) it is always our ``User``: annotate those views ``request: StaffRequest``. DRF
views behind ``IsStaffMember`` (the default permission) call ``staff_user(request)``, which
narrows and answers 401 should the permission ever be missing. Neither changes behaviour; they
state what the decorators and permissions already guarantee.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from supportdesk.models import User


class HtmxRequest(HttpRequest):
    """Any request: ``HtmxMiddleware`` (settings.MIDDLEWARE) sets ``request.htmx``."""

    htmx: HtmxDetails


class StaffRequest(HtmxRequest):
    """A request to a ``@login_required`` view: a signed-in staff member."""

    user: User


def staff_user(request: Request) -> User:
    """The staff member behind a DRF request (``IsStaffMember`` has already let them in)."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
