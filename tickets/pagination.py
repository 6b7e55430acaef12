"""Explicit pagination for the staff API."""

from rest_framework.pagination import CursorPagination


class ConversationCursorPagination(CursorPagination):
    """Keyset pages over the queue, newest activity first.

    A cursor stays correct while conversations are updated underneath it (no page drift, no
    COUNT query); the index ``tickets_conv_*_activity`` serves the ordering.
    """

    ordering = ("-last_activity_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
