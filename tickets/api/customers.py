"""Customers: detail, merges and their undo, linking identities."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk import extensions
from supportdesk.http import staff_user
from supportdesk.permissions import IsAdmin
from tickets.api.common import (
    BODY_MAX_CHARS,
    PK_MAX,
    BodyLimitMixin,
    ConversationSummarySerializer,
    IdentityOutputSerializer,
    MergeOutputSerializer,
    StaffApi,
    error_codes,
)
from tickets.models import (
    Conversation,
    Customer,
    Identity,
    Organisation,
)
from tickets.pagination import CustomerCursorPagination
from tickets.selectors import (
    customer_conversations_elsewhere,
    customer_detail_data,
    customer_get_for_user,
    customer_list_for_user,
    customer_merge_get_for_user,
)
from tickets.services import (
    UNCHANGED,
    customer_erase,
    customer_export,
    customer_merge,
    customer_merge_undo,
    customer_update,
    identity_link,
    organisation_get_or_create,
)

# --- Customers and merges ------------------------------------------------------------------------------


class OrganisationSerializer(serializers.Serializer[Organisation]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    domain = serializers.CharField(
        help_text="Customers with an email at it are linked; may be empty."
    )


class ElsewhereSerializer(serializers.Serializer[Conversation]):
    """A conversation of another team: that it exists and how it stands, never its messages
    nor its id (nothing to open)."""

    subject = serializers.CharField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    team = serializers.CharField(source="team.name", allow_null=True, default=None)
    channels = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    solved_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField(
        allow_null=True,
        help_text="What the customer said of its latest solve: resolved, partly, not_resolved, "
        "no_answer, no_survey (null without the surveys app).",
    )


class CustomerListItemSerializer(serializers.Serializer[Customer]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    organisation = OrganisationSerializer(allow_null=True)
    language = serializers.CharField()
    identities = IdentityOutputSerializer(many=True)
    conversation_count = serializers.IntegerField(help_text="Across every team.")
    open_count = serializers.IntegerField(help_text="New, open or pending, across every team.")


class CustomerListApi(BodyLimitMixin, GenericAPIView[Customer]):
    pagination_class = CustomerCursorPagination

    class FilterSerializer(serializers.Serializer[Any]):
        q = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text="Name, organisation, or any identity: an email, a handle, a phone number "
            "in any format ((415) 555-0142, +14155550142 and 555 0142 all match), or #id.",
        )

    OutputSerializer = CustomerListItemSerializer

    @extend_schema(
        tags=["customers"],
        summary="Search customers",
        description="The customers you may open (one of their conversations is in your teams, "
        "or they have none yet), by name; cursor-paginated (`?cursor=`, `?page_size=` up to 100; "
        "a cursor that is not one of ours: 404).",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), **error_codes(400, 401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        user = staff_user(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        customers = customer_list_for_user(user=user, query=filters.validated_data.get("q", ""))
        page = self.paginate_queryset(customers)
        output = self.OutputSerializer(page, many=True)  # type: ignore[arg-type]
        return self.get_paginated_response(output.data)


class CustomerDetailApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        language = serializers.CharField(
            max_length=20, required=False, allow_blank=True, help_text="A language tag: en, pt-br."
        )
        organisation = serializers.JSONField(
            required=False,
            allow_null=True,
            help_text="An organisation id, a name (found in any case, or created), or null to "
            "unlink.",
        )
        notes = serializers.CharField(max_length=BODY_MAX_CHARS, required=False, allow_blank=True)

        def validate_organisation(self, value: Any) -> Organisation | None:
            if value is None or value == "":
                return None
            if isinstance(value, bool):
                raise serializers.ValidationError("Give an organisation id, a name or null.")
            if isinstance(value, int):
                found = (
                    Organisation.objects.filter(pk=value).first() if 0 < value <= PK_MAX else None
                )
                if found is None:
                    raise serializers.ValidationError(f"No organisation {value}.")
                return found
            if isinstance(value, str) and value.strip() and len(value) <= 200:
                return organisation_get_or_create(name=value)
            raise serializers.ValidationError("Give an organisation id, a name or null.")

    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        notes = serializers.CharField(help_text="What agents should know; internal.")
        language = serializers.CharField()
        organisation = OrganisationSerializer(allow_null=True)
        merged_into = serializers.IntegerField(
            allow_null=True, help_text="Set when merged into another customer."
        )
        created_at = serializers.DateTimeField()
        identities = IdentityOutputSerializer(many=True)
        conversations = ConversationSummarySerializer(many=True, help_text="Those visible to you.")
        conversations_elsewhere = ElsewhereSerializer(
            many=True,
            help_text="The customer's conversations in teams you are not in: that they exist, "
            "never their messages (docs/security/authz.md).",
        )
        merges = MergeOutputSerializer(many=True, help_text="Customers merged into this one.")

    @extend_schema(
        tags=["customers"],
        summary="A customer with identities and conversations",
        responses={200: OutputSerializer, **error_codes(401, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        customer = customer_get_for_user(user=user, pk=pk)
        return Response(self.OutputSerializer(customer_payload(user, customer)).data)

    @extend_schema(
        tags=["customers"],
        summary="Edit a customer",
        description="Only the keys given change. Records a `customer.updated` event.",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_codes(400, 401, 403, 404, 409, 413)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        customer = customer_get_for_user(user=user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer = customer_update(
            customer=customer,
            actor=user,
            name=data.get("name", UNCHANGED),
            language=data.get("language", UNCHANGED),
            organisation=data.get("organisation", UNCHANGED),
            notes=data.get("notes", UNCHANGED),
        )
        customer = customer_get_for_user(user=user, pk=customer.pk)
        return Response(self.OutputSerializer(customer_payload(user, customer)).data)


def customer_payload(user: Any, customer: Customer) -> dict[str, Any]:
    data = customer_detail_data(user=user, customer=customer)
    elsewhere = customer_conversations_elsewhere(user=user, customer=customer)
    outcomes = extensions.annotate("conversation.outcome", [c.pk for c in elsewhere])
    for conversation in elsewhere:
        conversation.outcome = outcomes.get(conversation.pk)  # type: ignore[attr-defined]
    return {
        "id": customer.pk,
        "name": customer.name,
        "notes": customer.notes,
        "language": customer.language,
        "organisation": customer.organisation,
        "merged_into": customer.merged_into_id,
        "created_at": customer.created_at,
        "conversations_elsewhere": elsewhere,
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


# --- Privacy: erasure and export (admins) ------------------------------------------------------------


class CustomerEraseApi(StaffApi):
    permission_classes = [IsAdmin]

    class OutputSerializer(serializers.Serializer[Any]):
        customer = serializers.IntegerField()
        erased_at = serializers.DateTimeField()
        customers = serializers.IntegerField(help_text="This one and those merged into it.")
        conversations = serializers.IntegerField(help_text="Kept as anonymous shells.")
        messages = serializers.IntegerField(help_text="Messages whose text was removed.")
        attachments = serializers.IntegerField(help_text="Files deleted.")
        identities = serializers.IntegerField(help_text="Handles deleted.")

    @extend_schema(
        tags=["customers"],
        summary="Erase a customer's personal data",
        description="Admins only. Names, handles, subjects, message text, raw mail, files, "
        "survey comments and notes about the customer are removed everywhere; conversations "
        "stay as anonymous shells, so every figure is unchanged. Irreversible. Mail from a "
        "former address later starts a new customer. 409 when already erased or merged away.",
        request=None,
        responses={200: OutputSerializer, **error_codes(401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        customer = customer_get_for_user(user=user, pk=pk)
        details = customer_erase(customer=customer, actor=user)
        customer.refresh_from_db(fields=["erased_at"])
        return Response(
            self.OutputSerializer(
                {"customer": customer.pk, "erased_at": customer.erased_at, **details}
            ).data
        )


class CustomerExportApi(StaffApi):
    permission_classes = [IsAdmin]

    class FilterSerializer(serializers.Serializer[Any]):
        zip = serializers.BooleanField(
            required=False, default=False, help_text="true: a zip with customer.json and files."
        )

    @extend_schema(
        tags=["customers"],
        summary="Export everything held about a customer",
        description="Admins only, for a subject-access request: the customer, the customers "
        "merged into it, identities, every conversation with every message (notes and calls "
        "included) and attachment list, survey answers, idea quotes and cancellations. With "
        "`?zip=true`: `application/zip` holding `customer.json` and the attachments' files. "
        "Each export is in the audit log.",
        parameters=[FilterSerializer],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/zip"): OpenApiTypes.BINARY,
            **error_codes(400, 401, 403, 404),
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        user = staff_user(request)
        customer = customer_get_for_user(user=user, pk=pk)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        content_type, body = customer_export(
            customer=customer, actor=user, with_files=filters.validated_data["zip"]
        )
        response = HttpResponse(body, content_type=content_type)
        extension = "zip" if content_type == "application/zip" else "json"
        response["Content-Disposition"] = (
            f'attachment; filename="customer-{customer.pk}-export.{extension}"'
        )
        return response
