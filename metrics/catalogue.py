"""The metric keys of docs/metrics.md: how each is shown, where it sits, what it stands beside."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    quadrant: str  # outcome, connection, quality, speed
    kind: str  # rate, mean, nps, count, duration, gap, distribution
    help: str
    # For rates: True when a higher value is better (decides red/green, never for n < 10).
    higher_is_better: bool = True
    # Speed metrics: the quality figure drawn beside it.
    counterweight: str = ""


CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo("resolution_rate", "Resolution rate", "outcome", "rate",
               "Survey answers saying resolved = yes, of answers to the resolution question."),
    MetricInfo("partial_resolution_rate", "Partly resolved", "outcome", "rate",
               "Answers saying partly, of answers to the resolution question.", False),
    MetricInfo("customer_fcr", "Customer FCR", "outcome", "rate",
               "Resolved on the first contact, as the customer counts contacts."),
    MetricInfo("internal_fcr", "Internal FCR", "outcome", "rate",
               "Solves with one counted contact, of all solves: the desk's own view."),
    MetricInfo("resolution_gap", "Resolution gap", "outcome", "gap",
               "Internal FCR minus customer FCR over the same answered solves.", False),
    MetricInfo("reopen_rate", "Reopen rate", "outcome", "rate",
               "Solves reopened within 7 days.", False),
    MetricInfo("repeat_contact_rate", "Repeat contact", "outcome", "rate",
               "Solves after which the customer opened a new conversation within 7 days.", False),
    MetricInfo("unconfirmed_rate", "Unconfirmed", "outcome", "rate",
               "Delivered surveys with no resolution answer within the survey window.", False),
    MetricInfo("csat", "CSAT", "connection", "rate",
               "CSAT answers of 4 or 5, of all CSAT answers."),
    MetricInfo("csat_mean", "CSAT mean", "connection", "mean", "Mean CSAT answer, 1 to 5."),
    MetricInfo("nps", "NPS", "connection", "nps",
               "Promoters minus detractors, in points from -100 to 100."),
    MetricInfo("survey_response_rate", "Survey response rate", "connection", "rate",
               "Delivered surveys with at least one answer."),
    MetricInfo("survey_reach_rate", "Survey reach rate", "connection", "rate",
               "Solves whose survey reached the customer, by email or on their own channel."),
    MetricInfo("comment_rate", "Comment rate", "connection", "rate",
               "Responses with a comment."),
    MetricInfo("shout_outs", "Shout-outs", "connection", "count",
               "Responses in which the customer named an agent."),
    MetricInfo("interactions_per_conversation", "Interactions per conversation", "connection",
               "distribution", "Public messages per solved conversation, with CSAT per bucket."),
    MetricInfo("qa_score", "QA score", "quality", "mean", "Mean QA review score, 0 to 100."),
    MetricInfo("dropped_rate", "Dropped", "quality", "rate",
               "Solves where the customer's last message was still unanswered.", False),
    MetricInfo("system_disconnect_rate", "System disconnects", "quality", "rate",
               "Phone calls ended by the system.", False),
    MetricInfo("survey_solicitation_flags", "Score solicitation", "quality", "count",
               "Agent messages that ask for a score.", False),
    MetricInfo("first_response_time", "First response", "speed", "duration",
               "From a contact's first message to the next public reply.",
               counterweight="csat"),
    MetricInfo("handle_time", "Handle time", "speed", "duration",
               "Talk + hold + wrap-up per call; session length per chat.",
               counterweight="customer_fcr"),
    MetricInfo("time_to_resolution", "Time to resolution", "speed", "duration",
               "From the first message to a solve the customer confirmed.",
               counterweight="resolution_rate"),
    MetricInfo("first_response_business_time", "First response (business time)", "speed",
               "duration", "First response counting only the team's business hours.",
               counterweight="csat"),
    MetricInfo("time_to_resolution_business_time", "Time to resolution (business time)",
               "speed", "duration", "Time to resolution counting only the team's business hours.",
               counterweight="resolution_rate"),
    MetricInfo("promises_kept_rate", "Promises kept", "speed", "rate",
               "Contacts answered within the reply time promised to the customer (business "
               "time). The desk's promise: never per agent, never a target.",
               counterweight="customer_fcr"),
)  # fmt: skip

BY_KEY = {info.key: info for info in CATALOGUE}
QUADRANTS = (
    ("outcome", "Outcome", "What the customer says happened"),
    ("connection", "Connection", "The customer's voice"),
    ("quality", "Quality", "The inside view"),
    ("speed", "Speed", "Always beside its counterweight"),
)
SPEED_METRICS = tuple(info.key for info in CATALOGUE if info.quadrant == "speed")
INTERACTION_BUCKETS = ("1", "2-4", "5-9", "10+")
