"""bench/peer.py: django-helpdesk's figures beside ours, paired by what a person does."""

from __future__ import annotations

import argparse

import pytest

from bench import peer
from bench.client import Stats
from bench.harness import Row, _senders, ours_by_key

# The shape of the peer's results file (bench_http.py), figures from its N = 10,000 run.
PEER = {
    "W1_create_ticket_c1": {"p50_ms": 33.24, "p95_ms": 43.0, "req_per_s": 29.7},
    "W1_create_ticket_c4": {"p50_ms": 61.91, "p95_ms": 86.76, "req_per_s": 62.5},
    "W2a_open_queue_page": {"p50_ms": 29.9, "p95_ms": 38.26},
    "W2b_open_queue_rows25": {"p50_ms": 155.7, "p95_ms": 206.55},
    "W3_ticket_detail": {"p50_ms": 107.53, "p95_ms": 128.5},
    "W4a_customer_history_page": {"p50_ms": 28.9, "p95_ms": 31.83},
    "W4b_customer_history_rows": {"p50_ms": 337.05, "p95_ms": 452.69},
    "W5a_reports_index": {"p50_ms": 1023.76, "p95_ms": 1168.27},
    "W5d_agent_dashboard": {"p50_ms": 459.58, "p95_ms": 580.86},
}


def stats(latencies_ms: list[float], seconds: float) -> Stats:
    s = Stats("x")
    for latency in latencies_ms:
        s.add(latency / 1000)
    s.seconds = seconds
    return s


def row(workload: str, what: str, latencies_ms: list[float], seconds: float = 1.0) -> Row:
    return Row(workload, what, stats(latencies_ms, seconds))


def test_one_screen_of_several_requests_waits_for_their_sum():
    measure = peer.peer_measure(PEER, ("W2a_open_queue_page", "W2b_open_queue_rows25"))
    assert measure == peer.Measure(p50=185.6, p95=244.81, rate=0.0)
    assert peer.peer_measure(PEER, ("W9_missing",)) is None


def test_ratios_say_how_many_times_ahead_or_behind():
    queue = next(p for p in peer.PAIRS if p.key == "W2")
    create = next(p for p in peer.PAIRS if p.key == "W1 c1")
    ours = peer.Measure(p50=40.0, p95=50.0, rate=99.0)
    theirs = peer.Measure(p50=185.6, p95=250.0, rate=33.0)
    assert peer.ratio(queue, ours, theirs) == 5.0
    assert peer.ratio(create, ours, theirs) == 3.0
    assert peer.verdict(5.0) == "ahead 5.0x (aim 3x: PASS)"
    assert peer.verdict(1.5) == "ahead 1.5x (aim 3x: misses)"
    assert peer.verdict(0.5) == "behind: 2.0x slower (aim 3x: misses)"


def test_our_rows_are_found_under_the_pairs_keys_and_the_table_lists_each_pair():
    w1_one = row("W1 inbound", "email + chat ingestion, 1 senders", [20.0] * 40, seconds=1.0)
    w1_four = row("W1 inbound", "email + chat ingestion, 4 senders", [50.0] * 80, seconds=1.0)
    rows = [
        w1_one,
        w1_four,
        row("W2 queue", "first queue page, filtered (email)", [100.0] * 20),
        row("W2 queue", "search by email", [300.0] * 20),
        row("W3 conversation", "50 messages on 3 channels, customer with 20 past", [120.0] * 20),
        row("W4 customer API", "GET /api/v1/customers/{id}/ (20 conversations)", [30.0] * 20),
        row("W5 scorecard", "dashboard page: 90 days, one team: cache cold (first read)", [900.0]),
        row("W5 scorecard", "dashboard page: 90 days, one team", [50.0] * 20),
        row(
            "W5 scorecard", "dashboard page: 90 days, whole desk: cache cold (first read)", [1000.0]
        ),
        row("W5 scorecard", "dashboard page: 90 days, whole desk", [40.0] * 20),
    ]
    ours = ours_by_key(rows, {1: w1_one, 4: w1_four})
    assert {key: (m.p95, m.rate) for key, m in ours.items()} == {
        "W1 c1": (20.0, 40.0),
        "W1 c4": (50.0, 80.0),
        "W2": (100.0, 20.0),
        "W3": (120.0, 20.0),
        "W4": (30.0, 20.0),
        "W5 desk": (40.0, 20.0),
        "W5 desk cold": (1000.0, 1.0),
        "W5 team": (50.0, 20.0),
    }

    table = peer.side_by_side(ours, PEER)
    assert table[2:] == [
        "| W1 c1 | a message becomes a ticket, 1 client (W1_create_ticket_c1) | 29.7 req/s "
        "| 40.0 msg/s | 1.3x | ahead 1.3x (aim 3x: misses) |",
        "| W1 c4 | a message becomes a ticket, 4 clients (W1_create_ticket_c4) | 62.5 req/s "
        "| 80.0 msg/s | 1.3x | ahead 1.3x (aim 3x: misses) |",
        "| W2 | agent's queue, first page (W2a_open_queue_page + W2b_open_queue_rows25) "
        "| p50 186 / p95 245 ms | p50 100 / p95 100 ms | 2.4x | ahead 2.4x (aim 3x: misses) |",
        "| W3 | one conversation with its messages (W3_ticket_detail) | p50 108 / p95 128 ms "
        "| p50 120 / p95 120 ms | 1.1x | ahead 1.1x (aim 3x: misses) |",
        "| W4 | one customer's history (W4a_customer_history_page + W4b_customer_history_rows) "
        "| p50 366 / p95 485 ms | p50 30 / p95 30 ms | 16.2x | ahead 16.2x (aim 3x: PASS) |",
        "| W5 desk | reports: the whole desk (W5a_reports_index) | p50 1024 / p95 1168 ms "
        "| p50 40 / p95 40 ms | 29.2x | ahead 29.2x (aim 3x: PASS) |",
        "| W5 desk cold | reports: the whole desk, first read after a change (W5a_reports_index) "
        "| p50 1024 / p95 1168 ms | p50 1000 / p95 1000 ms | 1.2x | ahead 1.2x (aim 3x: misses) |",
        "| W5 team | a team's / an agent's dashboard (W5d_agent_dashboard) | p50 460 / p95 581 ms "
        "| p50 50 / p95 50 ms | 11.6x | ahead 11.6x (aim 3x: PASS) |",
    ]


def test_w1_senders_are_a_comma_separated_list():
    assert _senders("1,4,8") == [1, 4, 8]
    assert _senders("8") == [8]
    for bad in ("", "0", "a,b"):
        with pytest.raises(argparse.ArgumentTypeError):
            _senders(bad)


def test_the_asynchronous_w1_verdict_names_each_budget_it_misses():
    from bench.harness import async_verdict

    kept = {"sent": 1000, "stored": 1000, "distinct": 1000, "errors": 0, "pending": False}
    assert async_verdict(accepted_rate=210.0, stored_rate=120.0, **kept) == "PASS"
    assert async_verdict(accepted_rate=57.0, stored_rate=41.3, **kept) == (
        "accepts miss by 143/s (57/s); storing misses by 59/s (41/s)"
    )
    lost = {**kept, "stored": 998, "distinct": 997}
    assert async_verdict(accepted_rate=250.0, stored_rate=150.0, **lost) == (
        "LOST 2: 998 stored (997 distinct) of 1000"
    )
    waiting = {**kept, "stored": 900, "distinct": 900, "pending": True, "errors": 3}
    assert async_verdict(accepted_rate=250.0, stored_rate=150.0, **waiting) == (
        "the worker had not stored every accepted message by the timeout; 3 failed requests"
    )
