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


class CustomerCursorPagination(CursorPagination):
    """Keyset pages over the customer directory, by name (the trigram and primary-key indexes
    serve the search; no COUNT query)."""

    ordering = ("name", "id")
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100
