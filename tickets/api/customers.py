"""Customers: detail, merges and their undo, linking identities."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.http import staff_user
from tickets.api.common import (
    PK_MAX,
    ConversationSummarySerializer,
    IdentityOutputSerializer,
    MergeOutputSerializer,
    StaffApi,
    error_codes,
)
from tickets.models import (
    Customer,
    Identity,
)
from tickets.selectors import (
    customer_detail_data,
    customer_get_for_user,
    customer_merge_get_for_user,
)
from tickets.services import (
    customer_merge,
    customer_merge_undo,
    identity_link,
)

# --- Customers and merges ------------------------------------------------------------------------------


class CustomerDetailApi(StaffApi):
    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        merged_into = serializers.IntegerField(
            allow_null=True, help_text="Set when merged into another customer."
        )
        created_at = serializers.DateTimeField()
        identities = IdentityOutputSerializer(many=True)
        conversations = ConversationSummarySerializer(many=True, help_text="Those visible to you.")
        merges = MergeOutputSerializer(many=True, help_text="Customers merged into this one.")

    @extend_schema(
        tags=["customers"],
        summary="A customer with identities and conversations",
        responses={200: OutputSerializer, **error_codes(401, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        customer = customer_get_for_user(user=user, pk=pk)
        data = customer_detail_data(user=user, customer=customer)
        return Response(self.OutputSerializer(customer_payload(customer, data)).data)


def customer_payload(customer: Customer, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "name": customer.name,
        "merged_into": customer.merged_into_id,
        "created_at": customer.created_at,
        **data,
    }


class CustomerMergeApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
        other = serializers.IntegerField(
            min_value=1, max_value=PK_MAX, help_text="The customer merged into this one."
        )

    OutputSerializer = MergeOutputSerializer

    @extend_schema(
        tags=["customers"],
        summary="Merge another customer into this one",
        description="Identities and conversations move here; undo with /merges/{id}/undo/.",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_codes(400, 401, 403, 404, 409, 413)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        target = customer_get_for_user(user=user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        other = customer_get_for_user(user=user, pk=serializer.validated_data["other"])
        merge = customer_merge(target=target, other=other, actor=user)
        return Response(self.OutputSerializer(merge).data, status=status.HTTP_201_CREATED)


class CustomerIdentityLinkApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
        kind = serializers.ChoiceField(choices=Identity.Kind.choices)
        value = serializers.CharField(max_length=320)

    OutputSerializer = IdentityOutputSerializer

    @extend_schema(
        tags=["customers"],
        summary="Link a handle to this customer",
        description="201 when linked, 200 when it already was this customer's, 409 when it is "
        "another customer's (merge them instead).",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            **error_codes(400, 401, 403, 404, 409, 413),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        customer = customer_get_for_user(user=user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        known = set(customer.identities.values_list("pk", flat=True))
        identity = identity_link(customer=customer, actor=user, **serializer.validated_data)
        code = status.HTTP_200_OK if identity.pk in known else status.HTTP_201_CREATED
        return Response(self.OutputSerializer(identity).data, status=code)


class CustomerMergeUndoApi(StaffApi):
    OutputSerializer = MergeOutputSerializer

    @extend_schema(
        tags=["customers"],
        summary="Undo a merge",
        description="Moves back what the merge moved; later links and conversations stay. 409 if already undone.",
        request=None,
        responses={200: OutputSerializer, **error_codes(401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        merge = customer_merge_get_for_user(user=user, pk=pk)
        merge = customer_merge_undo(merge=merge, actor=user)
        return Response(self.OutputSerializer(merge).data)
