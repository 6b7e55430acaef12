"""Typed requests for views that know who is asking.

``request.user`` is ``User | AnonymousUser`` to the type checker. Behind ``@login_required`` (the
staff workspace) it is always our ``User``: annotate those views ``request: StaffRequest``. DRF
views behind ``IsStaffMember`` (the default permission) and admin methods (whose signatures are
Django's) call ``staff_user(request)``, which narrows and refuses should the guard ever be
missing. Neither changes behaviour; they state what the decorators and permissions guarantee.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
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


def staff_user(request: Request | HttpRequest) -> User:
    """The staff member behind a request that only staff reach: a DRF view behind
    ``IsStaffMember``, or a Django admin page. Refuses (401 / 403) anyone else."""
    user = request.user
    if isinstance(user, User):
        return user
    if isinstance(request, Request):
        raise NotAuthenticated()
    raise PermissionDenied("Sign in as a member of staff.")
