"""What a verdict may never say, given its own evidence; checked on every verdict.

Each invariant is a condition over one row of the message verdicts (facts plus
``outcome`` / ``hop`` / ``cause``) that must hold. ``violations()`` names the
ones a row breaks; the engine reports them with the report's problems, and with
``WSANALYZE_STRICT_INVARIANTS=1`` (the test suite sets it) a violation raises,
so no test can pass on a verdict that contradicts its evidence. The list is the
one in ``docs/verdicts.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl
from wstrace import conventions as c

POLICY_CAUSES = frozenset(
    {"auth_rejected", "origin_rejected", "rate_limited", "invalid_message", "handshake_rejected"}
)
STRICT_ENV = "WSANALYZE_STRICT_INVARIANTS"


class InvariantViolation(AssertionError):
    """A verdict contradicts its own evidence (raised only in strict mode)."""


@dataclass(frozen=True)
class Invariant:
    name: str
    says: str
    holds: pl.Expr


def _col(name: str) -> pl.Expr:
    return pl.col(name)


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "known_outcome_and_cause",
        "the outcome is one of the contract's outcomes and the cause one of its causes",
        _col("outcome").is_in([*c.OUTCOMES, "unknown"]) & _col("cause").is_in(c.CAUSES),
    ),
    Invariant(
        "hop_is_a_message_hop",
        "a message's hop is a hop of the message chain",
        _col("hop").is_in(c.MESSAGE_HOPS),
    ),
    Invariant(
        "a_run_is_never_no_worker",
        "a task that ran, or a delivered chunk from another run, proves a worker started it: "
        "the cause is never no_worker",
        (_col("cause") != "no_worker")
        | ((_col("task_runs") == 0) & (_col("orphan_deliveries") == 0) & ~_col("work_seen")),
    ),
    Invariant(
        "delivered_means_nothing_missing",
        "delivered/ok only when no answering chunk is missing, nothing raised and no task is open",
        ~((_col("outcome") == "delivered") & (_col("cause") == "ok"))
        | ((_col("gaps") == 0) & ~_col("any_error") & ~_col("task_open") & (_col("unsent") == 0)),
    ),
    Invariant(
        "failures_name_a_cause",
        "a lost, rejected or in-flight message never has cause ok",
        ~_col("outcome").is_in(["lost", "rejected", "in_flight"]) | (_col("cause") != "ok"),
    ),
    Invariant(
        "rejected_is_policy",
        "rejected means refused on purpose: the cause is a policy cause",
        (_col("outcome") != "rejected") | _col("cause").is_in(list(POLICY_CAUSES)),
    ),
    Invariant(
        "task_failed_shows_the_error",
        "task_failed only with an errored task or publish span",
        (_col("cause") != "task_failed") | _col("any_error"),
    ),
    Invariant(
        "in_flight_needs_an_open_connection",
        "in flight only while the message's connection is open",
        (_col("outcome") != "in_flight") | _col("conn_closed").is_null(),
    ),
    Invariant(
        "counts_are_counts",
        "chunk counts are non-negative and published never exceeds the attempts",
        (_col("published") >= 0)
        & (_col("delivered") >= 0)
        & (_col("sent") >= 0)
        & (_col("published") <= _col("publish_attempts")),
    ),
    Invariant(
        "a_revoked_task_is_not_stuck_or_absent",
        "a revoked task is never task_stuck or no_worker",
        ~_col("revoked") | ~_col("cause").is_in(["task_stuck", "no_worker"]),
    ),
)


def violations() -> pl.Expr:
    """The names of the invariants a verdict row breaks (an empty list when none)."""
    names = [pl.when(inv.holds.fill_null(True).not_()).then(pl.lit(inv.name)) for inv in INVARIANTS]
    return pl.concat_list(names).list.drop_nulls()


def strict() -> bool:
    """Whether a violation raises (the test suite) instead of becoming a report problem."""
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0")


def enforce(frame: pl.DataFrame) -> list[str]:
    """One problem line per violated invariant in ``frame``; raise in strict mode."""
    if "violations" not in frame.columns:
        return []
    bad = frame.filter(pl.col("violations").list.len() > 0)
    lines = [
        f"verdict of message {row['message_id']} ({row['outcome']}/{row['hop']}/{row['cause']}) "
        f"breaks invariant(s) {', '.join(row['violations'])}"
        for row in bad.iter_rows(named=True)
    ]
    if lines and strict():
        raise InvariantViolation("; ".join(lines))
    return lines
