"""Who an internal note @-mentions, among the staff who may open its conversation.

Pure functions, no database: the caller passes the candidates (``conversation_staff_who_can_see``),
so a mention of anyone else (another team, a deactivated account) names nobody.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from supportdesk.models import User


def mention_handles(user: User) -> list[str]:
    """What ``@`` may be followed by to name ``user``: the full name, the email, its local part.

    The autocomplete inserts the first; people typing by hand (or through the API) use any.
    """
    handles = [user.full_name.strip(), user.email, user.email.split("@")[0]]
    return [handle for handle in dict.fromkeys(handles) if handle]


def mentioned(body: str, candidates: Iterable[User]) -> list[User]:
    """The candidates ``body`` mentions, in the order given; each at most once.

    ``@Alice Archer``, ``@alice@desk.example`` and ``@alice`` name Alice; ``@Al`` and
    ``@alicea`` do not (a handle must end where a word ends), nor does ``bob@alice`` (an ``@``
    inside a word is an email address, not a mention). Case is ignored.
    """
    found: list[User] = []
    for user in candidates:
        for handle in mention_handles(user):
            pattern = rf"(?<![\w@.]){re.escape('@' + handle)}(?![\w@]|\.\w)"
            if re.search(pattern, body, flags=re.IGNORECASE):
                found.append(user)
                break
    return found
