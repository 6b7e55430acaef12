"""Set-based computation of daily facts from the source tables.

Each ``*_source`` function returns a QuerySet of source rows (solve events, contacts, messages)
annotated with the flags and durations the metrics need; the computation groups it in SQL, and
the drill-down filters the same QuerySet, so a figure and the conversations behind it can never
disagree. Everything here reads; the writes are in ``metrics.services``.

Fact rows (``DailyFact``): ``metric`` is a fact name below, numerator/denominator as stated.
Duration histograms (``DurationBucket``): ``first_response_time``, ``handle_time``,
``time_to_resolution``, and the business-time twins ``first_response_business_time`` and
``time_to_resolution_business_time`` (``routing.business_time``: only the team's opening hours).

``metrics.facts_sql`` writes these rows set-based on PostgreSQL (``facts_insert``) and
``metrics.topics`` computes the outcomes by topic (``topic_fact_rows``); both are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, cast

from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Coalesce, Floor, Ln, TruncDate
from django.utils import timezone

from routing.business_time import annotate_business_seconds
from routing.models import Promise
from supportdesk.solicitation import SOLICITATION_PATTERN
from surveys.models import Survey, SurveyResponse
from tickets.models import ChannelKind, Contact, Conversation, Event, Message

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from quality.models import QAReview

# Duration histogram: bucket b >= 1 holds [GROWTH**(b-1), GROWTH**b) seconds.
GROWTH = 1.02
LOG_GROWTH = math.log(GROWTH)
WINDOW = timedelta(days=7)  # reopen and repeat-contact windows (docs/metrics.md)

# Outbound agent messages that ask for a score (docs/metrics.md survey_solicitation_flags): the
# detector lives in supportdesk.solicitation, shared with the survey wording editor.


class Epoch(Func):
    """Seconds since 1970 of a datetime expression, as a float, on PostgreSQL and SQLite."""

    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::float8", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra,
        )


def _bucket_expr(seconds: Any) -> Case:
    return Case(
        When(**{f"{seconds}__lt": 1}, then=Value(0)),
        default=Floor(Ln(F(seconds)) / Value(LOG_GROWTH)) + Value(1),
        output_field=IntegerField(),
    )


def bucket_of(seconds: float) -> int:
    """Python twin of ``_bucket_expr`` (tests and sample data)."""
    return 0 if seconds < 1 else math.floor(math.log(seconds) / LOG_GROWTH) + 1


def bucket_value(bucket: int) -> float:
    """The representative duration of a bucket: its geometric middle (within 1% of any member)."""
    if bucket <= 0:
        return 0.0
    return GROWTH ** (bucket - 1) * math.sqrt(GROWTH)


def day_bounds(day_from: date, day_to: date) -> tuple[datetime, datetime]:
    """The aware instants of local midnight starting ``day_from`` and ``day_to``."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day_from, time.min), tz)
    end = timezone.make_aware(datetime.combine(day_to, time.min), tz)
    return start, end


def _local_day(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=timezone.get_current_timezone())


def _plus_window(ref: str) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(OuterRef(ref) + Value(WINDOW), output_field=DateTimeField())


def _count_subquery(qs: QuerySet[Any], group: str) -> Coalesce:
    counted = qs.order_by().values(group).annotate(n=Count("pk")).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


# --- Solve events -----------------------------------------------------------------------------


class SolveFlags(TypedDict):
    """What ``solve_source`` annotates on each solve event (the drill-down filters on them)."""

    day: date
    contacts: int
    reopened: bool
    repeat: bool
    last_in_at: datetime | None
    last_in_kind: str | None
    last_in_talk: int | None
    replied_after: bool
    interactions: int
    dropped: bool
    interactions_bucket: str
    survey_status: str | None
    resolved: str
    declared: int | None
    csat_answer: int | None
    nps_answer: int | None
    comment: str
    shout_out: bool
    responded: bool
    delivered: bool
    unreachable: bool
    answered: bool
    customer_first: bool
    resolution_in_window: bool
    window_over: bool


def solve_source(start: datetime, end: datetime) -> QuerySet[WithAnnotations[Event, SolveFlags]]:
    """Solve events in ``[start, end)`` with the flags of the solve-based metrics.

    ``contacts``: contacts of the conversation started up to the solve (recounted after moves).
    ``reopened``: a reopen of the conversation within 7 days after the solve.
    ``repeat``: the same customer (after merges) opened another conversation within 7 days.
    ``dropped``: the customer's last message before the solve was unanswered (a call with talk
    time, or any public reply at or after it, answers it).
    ``interactions``: public messages (customer's and agents') up to the solve.
    """
    last_inbound = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"),
        direction=Message.Direction.INBOUND,
        automated="",
        sent_at__lte=OuterRef("occurred_at"),
    ).order_by("-sent_at", "-id")
    public = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), sent_at__lte=OuterRef("occurred_at")
    ).filter(
        Q(direction=Message.Direction.OUTBOUND)
        | Q(direction=Message.Direction.INBOUND, automated="")
    )
    return (
        Event.objects.filter(
            kind=Event.Kind.SOLVED,
            occurred_at__gte=start,
            occurred_at__lt=end,
            conversation__spam_at__isnull=True,  # spam is in no metric
        )
        .annotate(
            day=_local_day("occurred_at"),
            contacts=_count_subquery(
                Contact.objects.filter(
                    conversation_id=OuterRef("conversation_id"),
                    started_at__lte=OuterRef("occurred_at"),
                ),
                "conversation_id",
            ),
            reopened=Exists(
                Event.objects.filter(
                    kind=Event.Kind.REOPENED,
                    conversation_id=OuterRef("conversation_id"),
                    occurred_at__gt=OuterRef("occurred_at"),
                    occurred_at__lte=_plus_window("occurred_at"),
                )
            ),
            repeat=Exists(
                Conversation.objects.filter(
                    customer_id=OuterRef("conversation__customer_id"),
                    spam_at__isnull=True,
                    first_inbound_at__gt=OuterRef("occurred_at"),
                    first_inbound_at__lte=_plus_window("occurred_at"),
                ).exclude(pk=OuterRef("conversation_id"))
            ),
            last_in_at=Subquery(last_inbound.values("sent_at")[:1]),
            last_in_kind=Subquery(last_inbound.values("channel_kind")[:1]),
            last_in_talk=Subquery(last_inbound.values("contact__talk_seconds")[:1]),
            replied_after=Exists(
                Message.objects.filter(
                    conversation_id=OuterRef("conversation_id"),
                    direction=Message.Direction.OUTBOUND,
                    sent_at__gte=OuterRef("last_in_at"),
                    sent_at__lte=OuterRef("occurred_at"),
                )
            ),
            interactions=_count_subquery(public, "conversation_id"),
        )
        .annotate(
            dropped=Case(
                When(last_in_at__isnull=True, then=Value(False)),
                When(replied_after=True, then=Value(False)),
                When(last_in_kind=ChannelKind.PHONE, last_in_talk__gt=0, then=Value(False)),
                default=Value(True),
                output_field=BooleanField(),
            ),
            interactions_bucket=Case(
                When(interactions__lte=1, then=Value("1")),
                When(interactions__lte=4, then=Value("2-4")),
                When(interactions__lte=9, then=Value("5-9")),
                default=Value("10+"),
            ),
            # The survey of this solve and its answer (one survey per solve, one response per
            # survey: these joins never multiply rows).
            survey_status=F("survey__status"),
            resolved=Coalesce(
                F("survey__responses__resolved"), Value(""), output_field=CharField()
            ),
            declared=F("survey__responses__contacts_declared"),
            csat_answer=F("survey__responses__csat"),
            nps_answer=F("survey__responses__nps"),
            comment=Coalesce(F("survey__responses__comment"), Value(""), output_field=TextField()),
            shout_out=Coalesce(F("survey__responses__shout_out"), Value(False)),
            responded=Exists(SurveyResponse.objects.filter(survey__event_id=OuterRef("pk"))),
        )
        .annotate(
            delivered=_flag(Q(survey_status=Survey.Status.SENT)),
            # Not reachable: the survey was due but the customer had no deliverable email and
            # no chat or social channel to send it on.
            unreachable=_flag(
                Q(
                    survey_status=Survey.Status.SKIPPED,
                    survey__skip_reason__in=[
                        Survey.SkipReason.NO_EMAIL,
                        Survey.SkipReason.BOUNCED,
                    ],
                )
            ),
            answered=_flag(~Q(resolved="")),
            customer_first=_flag(
                Q(resolved="yes") & (Q(declared=1) | Q(declared__isnull=True, contacts=1))
            ),
            # Unconfirmed: delivered, its window is over, and no resolution answer came within
            # it. Decided: delivered and (window over, or answered).
            resolution_in_window=_flag(
                Q(survey__responses__first_answered_at__lte=F("survey__expires_at"))
                & ~Q(resolved="")
            ),
            window_over=_flag(Q(survey__expires_at__lte=Value(timezone.now()))),
        )
    )


def _flag(condition: Q) -> Case | Value:
    """A boolean that is False, never NULL, when the condition cannot be evaluated."""
    if not condition:
        return Value(True, output_field=BooleanField())
    return Case(
        When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()
    )


def interactions_fact(bucket: str) -> str:
    return "interactions_" + bucket.replace("-", "_").replace("+", "plus")


BUCKET_KEYS: tuple[tuple[str, str], ...] = (
    ("1", "i1"),
    ("2-4", "i2"),
    ("5-9", "i5"),
    ("10+", "i10"),
)

# The facts of a solve cell: (fact, numerator alias, denominator alias) of ``_solve_grouped``.
SOLVE_FACTS: tuple[tuple[str, str, str], ...] = (
    ("internal_fcr", "fcr", "solves"),
    ("reopen_rate", "reopened_n", "solves"),
    ("repeat_contact_rate", "repeat_n", "solves"),
    ("dropped_rate", "dropped_n", "solves"),
    ("resolution_rate", "yes_n", "answered_n"),
    ("partial_resolution_rate", "partly_n", "answered_n"),
    ("customer_fcr", "customer_fcr_n", "answered_n"),
    ("gap_internal_fcr", "gap_internal_n", "answered_n"),
    ("survey_response_rate", "responded_n", "delivered_n"),
    ("survey_reach_rate", "delivered_n", "solves"),
    ("survey_not_reachable", "unreachable_n", "solves"),
    ("unconfirmed_rate", "unconfirmed_n", "decided_n"),
    ("comment_rate", "comments_n", "responses_n"),
    ("shout_outs", "shout_outs_n", "responses_n"),
    ("csat", "csat_good", "csat_n"),
    ("csat_mean", "csat_sum", "csat_n"),
    ("nps", "nps_net", "nps_n"),
    *(
        fact
        for bucket, key in BUCKET_KEYS
        for fact in (
            (interactions_fact(bucket), key, "solves"),
            ("csat_" + interactions_fact(bucket), f"csat_{key}_good", f"csat_{key}_n"),
        )
    ),
)


# A grouped fact query: one dict per cell (``CELL_FIELDS`` and the counts), whatever the source.
Grouped: TypeAlias = QuerySet[Any, dict[str, Any]]


def with_cells(qs: QuerySet[Any], *, team: str, agent: str) -> QuerySet[Any]:
    """Name a grouped query's cell columns alike (``cell_day``, ``cell_team``, ``cell_agent``,
    ``cell_channel``), so a fact query is read the same in Python and wrapped in SQL."""
    # Any source (solves, contacts, messages, reviews): the plugin cannot follow the model.
    cells: QuerySet[Any] = qs.annotate(
        cell_day=F("day"),
        cell_team=F(team),
        cell_agent=F(agent),
        cell_channel=Coalesce(F("channel_kind"), Value(""), output_field=CharField()),
    )
    return cells


CELL_FIELDS = ("cell_day", "cell_team", "cell_agent", "cell_channel")


def _solve_grouped(start: datetime, end: datetime) -> Grouped:
    grouped: Grouped = (
        with_cells(solve_source(start, end), team="team_id", agent="agent_id")
        .values(*CELL_FIELDS)
        .annotate(
            solves=Count("pk"),
            fcr=Count("pk", filter=Q(contacts=1)),
            reopened_n=Count("pk", filter=Q(reopened=True)),
            repeat_n=Count("pk", filter=Q(repeat=True)),
            dropped_n=Count("pk", filter=Q(dropped=True)),
            i1=Count("pk", filter=Q(interactions_bucket="1")),
            i2=Count("pk", filter=Q(interactions_bucket="2-4")),
            i5=Count("pk", filter=Q(interactions_bucket="5-9")),
            i10=Count("pk", filter=Q(interactions_bucket="10+")),
            answered_n=Count("pk", filter=Q(answered=True)),
            yes_n=Count("pk", filter=Q(resolved="yes")),
            partly_n=Count("pk", filter=Q(resolved="partly")),
            customer_fcr_n=Count("pk", filter=Q(customer_first=True)),
            gap_internal_n=Count("pk", filter=Q(answered=True, contacts=1)),
            delivered_n=Count("pk", filter=Q(delivered=True)),
            unreachable_n=Count("pk", filter=Q(unreachable=True)),
            responded_n=Count("pk", filter=Q(delivered=True, responded=True)),
            decided_n=Count(
                "pk", filter=Q(delivered=True) & (Q(window_over=True) | Q(answered=True))
            ),
            unconfirmed_n=Count(
                "pk",
                filter=Q(delivered=True, window_over=True) & ~Q(resolution_in_window=True),
            ),
            responses_n=Count("pk", filter=Q(responded=True)),
            comments_n=Count("pk", filter=Q(responded=True) & ~Q(comment="")),
            shout_outs_n=Count("pk", filter=Q(responded=True, shout_out=True)),
            csat_n=Count("pk", filter=Q(csat_answer__isnull=False)),
            csat_good=Count("pk", filter=Q(csat_answer__gte=4)),
            csat_sum=Coalesce(Sum("csat_answer"), Value(0)),
            nps_n=Count("pk", filter=Q(nps_answer__isnull=False)),
            nps_promoters=Count("pk", filter=Q(nps_answer__gte=9)),
            nps_detractors=Count("pk", filter=Q(nps_answer__lte=6)),
            **{
                f"csat_{key}_good": Count(
                    "pk", filter=Q(interactions_bucket=bucket, csat_answer__gte=4)
                )
                for bucket, key in BUCKET_KEYS
            },
            **{
                f"csat_{key}_n": Count(
                    "pk", filter=Q(interactions_bucket=bucket, csat_answer__isnull=False)
                )
                for bucket, key in BUCKET_KEYS
            },
        )
        .annotate(nps_net=F("nps_promoters") - F("nps_detractors"))
        .order_by()
    )
    return grouped


# --- Contacts: first response, handle time, system disconnects ---------------------------------


def _first_reply() -> QuerySet[Event]:
    return Event.objects.filter(
        kind=Event.Kind.REPLIED,
        conversation_id=OuterRef("conversation_id"),
        occurred_at__gte=OuterRef("started_at"),
    ).order_by("occurred_at", "id")


class ReplyTiming(TypedDict):
    """What ``first_response_source`` annotates on each written contact."""

    day: date
    reply_at: datetime
    reply_agent: int | None
    reply_team: int | None
    seconds: float


def first_response_source(
    start: datetime, end: datetime
) -> QuerySet[WithAnnotations[Contact, ReplyTiming]]:
    """Written contacts (not calls: a call is answered live) started in ``[start, end)`` with the
    first public reply at or after their first message. Attributed to the replying agent and
    their team at the time of the reply, on the day of the contact."""
    reply = _first_reply()
    return (
        Contact.objects.filter(
            started_at__gte=start, started_at__lt=end, conversation__spam_at__isnull=True
        )
        .exclude(channel_kind=ChannelKind.PHONE)
        .annotate(
            day=_local_day("started_at"),
            reply_at=Subquery(reply.values("occurred_at")[:1]),
            reply_agent=Subquery(reply.values("agent_id")[:1]),
            reply_team=Subquery(reply.values("team_id")[:1]),
        )
        .filter(reply_at__isnull=False)
        .annotate(seconds=Epoch("reply_at") - Epoch("started_at"))
    )


class PromiseTiming(TypedDict):
    """What ``promise_source`` annotates on each written contact with a promise."""

    day: date
    promise_seconds: int
    reply_at: datetime | None
    waited: float
    kept: bool
    decided: bool
    no_agent: None


def promise_source(
    start: datetime, end: datetime, *, now: datetime | None = None
) -> QuerySet[WithAnnotations[Contact, PromiseTiming]]:
    """Written contacts started in ``[start, end)`` whose channel and conversation priority
    carry a promise (``routing.Promise``): ``kept`` when the first public reply came within
    the promised business seconds; ``decided`` once answered or past the promise (a contact
    still within its promise counts nowhere yet). Never attributed to an agent (``no_agent``):
    docs/metrics.md says why."""
    now = now or timezone.now()
    reply = _first_reply()
    promised = Promise.objects.filter(channel_kind=OuterRef("channel_kind"))
    exact = promised.filter(priority=OuterRef("conversation__priority")).values("reply_seconds")
    anyone = promised.filter(priority="").values("reply_seconds")
    contacts = (
        Contact.objects.filter(
            started_at__gte=start, started_at__lt=end, conversation__spam_at__isnull=True
        )
        .exclude(channel_kind=ChannelKind.PHONE)
        .annotate(
            day=_local_day("started_at"),
            promise_seconds=Coalesce(Subquery(exact[:1]), Subquery(anyone[:1])),
            reply_at=Subquery(reply.values("occurred_at")[:1]),
            no_agent=Cast(Value(None), output_field=BigIntegerField()),
        )
        .filter(promise_seconds__isnull=False)
    )
    timed = annotate_business_seconds(
        contacts,
        name="waited",
        team="conversation__team_id",
        start="started_at",
        end=Coalesce(F("reply_at"), Value(now), output_field=DateTimeField()),
    )
    flagged = timed.annotate(
        kept=Case(
            When(reply_at__isnull=False, waited__lte=F("promise_seconds"), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
        decided=Case(
            When(reply_at__isnull=False, then=Value(True)),
            When(waited__gt=F("promise_seconds"), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
    )
    # ``waited`` comes from routing's annotation, which the plugin cannot follow.
    return cast("QuerySet[WithAnnotations[Contact, PromiseTiming]]", flagged)


class HandleTiming(TypedDict):
    """What ``handle_source`` annotates on each call and chat session."""

    day: date
    next_start: datetime | None
    last_chat_at: datetime | None
    reply_agent: int | None
    seconds: float | None
    handler: int | None


def handle_source(
    start: datetime, end: datetime
) -> QuerySet[WithAnnotations[Contact, HandleTiming]]:
    """Calls (talk + hold + wrap-up) and chat sessions (first message to the last chat message
    before the conversation's next contact) started in ``[start, end)``."""
    reply = _first_reply()
    next_start = (
        Contact.objects.filter(
            conversation_id=OuterRef("conversation_id"), started_at__gt=OuterRef("started_at")
        )
        .order_by("started_at")
        .values("started_at")[:1]
    )
    far = datetime(9999, 1, 1, tzinfo=UTC)
    last_chat = (
        Message.objects.filter(
            conversation_id=OuterRef("conversation_id"),
            channel_kind=ChannelKind.CHAT,
            sent_at__gte=OuterRef("started_at"),
            sent_at__lt=Coalesce(OuterRef("next_start"), Value(far)),
        )
        .exclude(direction=Message.Direction.NOTE)
        .order_by("-sent_at")
        .values("sent_at")[:1]
    )
    return (
        Contact.objects.filter(
            started_at__gte=start,
            started_at__lt=end,
            channel_kind__in=[ChannelKind.PHONE, ChannelKind.CHAT],
            conversation__spam_at__isnull=True,
        )
        .annotate(
            day=_local_day("started_at"),
            next_start=Subquery(next_start),
            last_chat_at=Subquery(last_chat),
            reply_agent=Subquery(reply.values("agent_id")[:1]),
        )
        .annotate(
            seconds=Case(
                When(
                    channel_kind=ChannelKind.PHONE,
                    then=ExpressionWrapper(
                        Coalesce("talk_seconds", 0)
                        + Coalesce("hold_seconds", 0)
                        + Coalesce("wrap_seconds", 0),
                        output_field=FloatField(),
                    ),
                ),
                default=Epoch("last_chat_at") - Epoch("started_at"),
                output_field=FloatField(),
            ),
            handler=Case(
                When(channel_kind=ChannelKind.PHONE, then=F("agent_id")),
                default=F("reply_agent"),
                output_field=IntegerField(),
            ),
        )
    )


class OnDay(TypedDict):
    """The local day a source row counts on (``calls_source``, ``qa_source``)."""

    day: date


def calls_source(start: datetime, end: datetime) -> QuerySet[WithAnnotations[Contact, OnDay]]:
    return Contact.objects.filter(
        started_at__gte=start,
        started_at__lt=end,
        channel_kind=ChannelKind.PHONE,
        conversation__spam_at__isnull=True,
    ).annotate(day=_local_day("started_at"))


class SolicitationFlag(TypedDict):
    """What ``solicitation_source`` annotates on each agent message."""

    day: date
    solicits: bool


def solicitation_source(
    start: datetime, end: datetime
) -> QuerySet[WithAnnotations[Message, SolicitationFlag]]:
    """Agent messages sent in ``[start, end)`` (public replies), flagged when they ask for a score."""
    return (
        Message.objects.filter(
            direction=Message.Direction.OUTBOUND,
            author__isnull=False,
            sent_at__gte=start,
            sent_at__lt=end,
            conversation__spam_at__isnull=True,
        )
        .annotate(
            day=_local_day("sent_at"),
            solicits=Case(
                When(body_text__iregex=SOLICITATION_PATTERN, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
        )
        .select_related("conversation")
    )


def _histogram_grouped(
    qs: QuerySet[Any], *, team: str, agent: str, seconds: str = "seconds"
) -> Grouped:
    grouped: Grouped = (
        with_cells(qs.annotate(bucket=_bucket_expr(seconds)), team=team, agent=agent)
        .values(*CELL_FIELDS, "bucket")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return grouped


@dataclass(frozen=True)
class FactQuery:
    """One grouped query of the computation and the fact rows each of its rows gives.

    ``facts``: ``(fact, numerator alias, denominator alias)`` for ``DailyFact`` rows, or, for a
    duration histogram, ``metric`` names the ``DurationBucket`` metric of its ``bucket``/``n``.
    """

    qs: Grouped
    facts: tuple[tuple[str, str, str], ...] = ()
    metric: str = ""


def fact_queries(day_from: date, day_to: date) -> list[FactQuery]:
    """The grouped queries behind the facts of local days ``[day_from, day_to)``: a constant
    number, whatever the number of source rows."""
    start, end = day_bounds(day_from, day_to)
    calls = (
        with_cells(calls_source(start, end), team="conversation__team_id", agent="agent_id")
        .values(*CELL_FIELDS)
        .annotate(calls=Count("pk"), system=Count("pk", filter=Q(ended_by="system")))
        .order_by()
    )
    messages = (
        with_cells(solicitation_source(start, end), team="conversation__team_id", agent="author_id")
        .values(*CELL_FIELDS)
        .annotate(sent=Count("pk"), flagged=Count("pk", filter=Q(solicits=True)))
        .order_by()
    )
    confirmed = (
        solve_source(start, end)
        .filter(resolved="yes", conversation__first_inbound_at__isnull=False)
        .annotate(seconds=Epoch("occurred_at") - Epoch("conversation__first_inbound_at"))
    )
    first_business = annotate_business_seconds(
        first_response_source(start, end),
        name="business_seconds",
        team="reply_team",
        start="started_at",
        end="reply_at",
    )
    confirmed_business = annotate_business_seconds(
        confirmed,
        name="business_seconds",
        team="team_id",
        start="conversation__first_inbound_at",
        end="occurred_at",
    )
    qa = (
        with_cells(qa_source(start, end), team="team_id", agent="agent_id")
        .values(*CELL_FIELDS)
        # Sum of scores in hundredths of a point: integer facts, exact means.
        .annotate(total=Sum("score"), n=Count("pk"))
        .annotate(
            hundredths=Func(
                ExpressionWrapper(
                    F("total") * Value(100),
                    output_field=DecimalField(max_digits=12, decimal_places=2),
                ),
                function="ROUND",
                output_field=IntegerField(),
            )
        )
        .order_by()
    )
    return [
        FactQuery(_solve_grouped(start, end), facts=SOLVE_FACTS),
        FactQuery(calls, facts=(("system_disconnect_rate", "system", "calls"),)),
        FactQuery(messages, facts=(("survey_solicitation_flags", "flagged", "sent"),)),
        FactQuery(
            _histogram_grouped(
                first_response_source(start, end), team="reply_team", agent="reply_agent"
            ),
            metric="first_response_time",
        ),
        FactQuery(
            _histogram_grouped(
                handle_source(start, end).filter(seconds__isnull=False),
                team="conversation__team_id",
                agent="handler",
            ),
            metric="handle_time",
        ),
        FactQuery(
            _histogram_grouped(confirmed, team="team_id", agent="agent_id"),
            metric="time_to_resolution",
        ),
        FactQuery(qa, facts=(("qa_score", "hundredths", "n"),)),
        FactQuery(
            _histogram_grouped(
                first_business,
                team="reply_team",
                agent="reply_agent",
                seconds="business_seconds",
            ),
            metric="first_response_business_time",
        ),
        FactQuery(
            _histogram_grouped(
                confirmed_business, team="team_id", agent="agent_id", seconds="business_seconds"
            ),
            metric="time_to_resolution_business_time",
        ),
        FactQuery(
            with_cells(promise_source(start, end), team="conversation__team_id", agent="no_agent")
            .values(*CELL_FIELDS)
            .annotate(
                kept=Count("pk", filter=Q(kept=True)), promised=Count("pk", filter=Q(decided=True))
            )
            .order_by(),
            facts=(("promises_kept_rate", "kept", "promised"),),
        ),
    ]


class Cell(TypedDict):
    """Where a fact row counts: its local day, team, agent and channel."""

    day: date
    team_id: int | None
    agent_id: int | None
    channel_kind: str


# ``(cell, metric, numerator, denominator)`` and ``(cell, metric, bucket, count)``.
FactRow: TypeAlias = tuple[Cell, str, int, int]
DurationRow: TypeAlias = tuple[Cell, str, int, int]


def cell_of(row: dict[str, Any]) -> Cell:
    return {
        "day": row["cell_day"],
        "team_id": row["cell_team"],
        "agent_id": row["cell_agent"],
        "channel_kind": row["cell_channel"] or "",
    }


def fact_rows(day_from: date, day_to: date) -> tuple[list[FactRow], list[DurationRow]]:
    """All fact rows and histogram rows for local days ``[day_from, day_to)``, in Python.

    Returns ``(facts, durations)``: facts are ``(cell, metric, numerator, denominator)``,
    durations ``(cell, metric, bucket, count)``. A fact that is 0 of 0 is left out: a sum
    never misses it. ``facts_insert`` writes the same rows with ``INSERT ... SELECT``.
    """
    facts: list[FactRow] = []
    durations: list[DurationRow] = []
    for query in fact_queries(day_from, day_to):
        for row in query.qs:
            cell = cell_of(row)
            if query.metric:
                durations.append((cell, query.metric, int(row["bucket"]), row["n"]))
                continue
            for metric, num, den in query.facts:
                numerator, denominator = int(row[num] or 0), int(row[den] or 0)
                if numerator or denominator:
                    facts.append((cell, metric, numerator, denominator))
    return facts, durations


def qa_source(start: datetime, end: datetime) -> QuerySet[WithAnnotations[QAReview, OnDay]]:
    """QA reviews that count in ``qa_score`` (the QA selectors' rule), by their solve's day."""
    from quality.selectors import scored_reviews

    return (
        scored_reviews()
        .filter(solved_at__gte=start, solved_at__lt=end)
        .annotate(day=_local_day("solved_at"))
    )


# The set-based writes and the outcomes by topic build on the sources above, so they are imported
# once those exist; re-exported (``x as x``) so that ``from metrics.facts import facts_insert``
# keeps working.
from metrics.facts_sql import facts_insert as facts_insert  # noqa: E402
from metrics.topics import TOPIC_FACTS as TOPIC_FACTS  # noqa: E402
from metrics.topics import topic_fact_rows as topic_fact_rows  # noqa: E402
