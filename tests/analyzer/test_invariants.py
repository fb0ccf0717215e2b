"""Verdicts never contradict their evidence: invariants over generated partial, reordered chains.

Hypothesis builds conversations of the shapes real apps have (streamed answers
from a task, echoes through the room's group, fan-out to empty per-user groups,
frames that start no work, direct replies, two sockets, raw pub/sub reads),
then takes spans away (a process died before exporting), shifts clocks, makes
hops fail and closes connections at random. Every verdict must satisfy every
invariant in ``wsanalyze.verdicts.invariants``.
"""

from __future__ import annotations

import random
from datetime import timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsanalyze.verdicts import analyze_conversation, message_verdicts
from wsanalyze.verdicts.invariants import INVARIANTS, InvariantViolation, enforce
from wsanalyze.verdicts.testing import Trace
from wstrace import conventions as c

_EXCEPTIONS = (
    "ValueError: boom",
    "ConnectionError: Error 111 connecting to localhost:6379. Connection refused.",
    "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL).",
    "ChannelFull: over capacity",
    "TypeError: Object of type UUID is not JSON serializable",
)


def _message(t: Trace, rng: random.Random, mid: str, at: float, shape: str, conns: list[str]):
    rec = t.receive(mid, conns[0], at, frame_type=rng.choice(["message", "typing", "stop", None]))
    if shape == "handled":
        return
    if shape == "direct":
        t.send(mid, rec, at + 1, None, connection_id=conns[0])
        return
    if shape in ("echo", "echo+task"):
        echo = t.publish(mid, rec, at + 1, 1, service="web")
        for k in conns:
            dlv = t.deliver(mid, echo, at + 2, 1, k)
            t.send(mid, dlv, at + 3, 1, connection_id=k)
        t.publish(mid, rec, at + 1.5, 1, service="web", members=0, group="user_9", message_type="u")
        if shape == "echo":
            return
    enq = t.enqueue(mid, rec, at + 4)
    task = t.task(mid, enq, at + 6, rng.choice([None, 80.0]))
    for seq in range(1, rng.randint(0, 4) + 1):
        members = rng.choice([len(conns), len(conns), 0])
        pub = t.publish(mid, task, at + 10 * seq, seq, members=members)
        if members:
            for k in conns:
                dlv = t.deliver(mid, pub, at + 10 * seq + 1, seq, k)
                t.send(mid, dlv, at + 10 * seq + 2, seq, connection_id=k)


def _conversation(seed: int, shapes: list[str], two_sockets: bool, settle: bool) -> Trace:
    rng = random.Random(seed)
    t = Trace("conv-p")
    if rng.random() < 0.5:
        t.worker_ready([rng.choice(["celery", "agents"])])
    conns = ["k1", "k2"] if two_sockets else ["k1"]
    for k in conns:
        t.connect(k, at=0, group="chat_conv-p")
    for i, shape in enumerate(shapes):
        _message(t, rng, f"m{i}", 10 + 100 * i, shape, conns)
    ending = rng.choice(["open", "client", "server-4004", "server-1011", "idle-1006"])
    close_at = rng.uniform(5, 100 * len(shapes) + 50)
    if ending == "client":
        t.disconnect("k1", close_at)
    elif ending.startswith("server"):
        t.close("k1", close_at, int(ending.rsplit("-", 1)[1]))
    elif ending == "idle-1006":
        t.disconnect("k1", close_at, code=1006)
    # the evidence is partial, reordered and sometimes wrong
    kept = []
    for row in t.rows:
        if row["hop"] in c.MESSAGE_HOPS and rng.random() < 0.2:
            continue  # its process died before exporting it
        if rng.random() < 0.1:
            row["ts"] = row["ts"] + timedelta(milliseconds=rng.uniform(-50, 50))  # clock skew
        if row["hop"] in c.MESSAGE_HOPS and rng.random() < 0.08:
            row["status"] = "error"
            row["exception"] = rng.choice(_EXCEPTIONS)
        kept.append(row)
    rng.shuffle(kept)
    t.rows = kept
    if settle:
        t.span("ws.accept", c.HOP_ACCEPT, c.EV_ACCEPT, 60_000, 1, conversation_id="x")
    return t


_SHAPES = st.sampled_from(["stream", "echo", "echo+task", "handled", "direct"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    shapes=st.lists(_SHAPES, min_size=1, max_size=3),
    two_sockets=st.booleans(),
    settle=st.booleans(),
)
def test_no_verdict_contradicts_its_evidence(seed, shapes, two_sockets, settle):
    t = _conversation(seed, shapes, two_sockets, settle)
    frame = message_verdicts(t.frame()).collect()
    broken = frame.filter(pl.col("violations").list.len() > 0)
    assert broken.is_empty(), broken.select(
        "message_id", "outcome", "hop", "cause", "rule", "violations"
    ).to_dicts()


def test_every_invariant_can_fail():
    """Each invariant rejects at least one hand-made contradiction (the checker is not vacuous)."""
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", chunks=2)
    row = message_verdicts(t.frame()).collect().row(0, named=True)
    contradictions = {
        "known_outcome_and_cause": {"cause": "made_up"},
        "hop_is_a_message_hop": {"hop": "auth"},
        "a_run_is_never_no_worker": {"cause": "no_worker"},
        "delivered_means_nothing_missing": {"outcome": "delivered", "cause": "ok", "gaps": 1},
        "failures_name_a_cause": {"outcome": "lost", "cause": "ok"},
        "rejected_is_policy": {"outcome": "rejected", "cause": "task_failed"},
        "task_failed_shows_the_error": {"cause": "task_failed", "any_error": False},
        "in_flight_needs_an_open_connection": {
            "outcome": "in_flight",
            "conn_closed": row["first_ts"],
        },
        "counts_are_counts": {"published": 5, "publish_attempts": 2},
        "a_revoked_task_is_not_stuck_or_absent": {"revoked": True, "cause": "task_stuck"},
    }
    assert set(contradictions) == {inv.name for inv in INVARIANTS}
    base = pl.DataFrame([row]).drop("violations")
    for inv in INVARIANTS:
        bad = base.with_columns(
            [pl.lit(v, dtype=base.schema[k]).alias(k) for k, v in contradictions[inv.name].items()]
        )
        assert not bad.select(inv.holds.fill_null(True)).item(), inv.name


def test_strict_mode_raises_on_a_violation(monkeypatch):
    monkeypatch.setenv("WSANALYZE_STRICT_INVARIANTS", "1")
    frame = pl.DataFrame(
        {
            "message_id": ["m1"],
            "outcome": ["lost"],
            "hop": ["task"],
            "cause": ["ok"],
            "violations": [["failures_name_a_cause"]],
        }
    )
    with pytest.raises(InvariantViolation, match="failures_name_a_cause"):
        enforce(frame)
    monkeypatch.setenv("WSANALYZE_STRICT_INVARIANTS", "0")
    assert enforce(frame) == [
        "verdict of message m1 (lost/task/ok) breaks invariant(s) failures_name_a_cause"
    ]


def test_a_report_names_no_problem_when_the_verdicts_hold():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", chunks=3)
    report = analyze_conversation(t.frame(), "conv-1")
    assert not any("invariant" in p for p in report.problems)
