"""Evidence rows: log lines tied exactly to a message whose spans decide it.

A task whose run has spans gets no run row from its lines (nothing is counted
twice); its Celery and app lines, and app lines naming a message id its spans
carry, become one ``LOG_EVIDENCE`` row each, shown in that message's evidence.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from ._rows import (
    LOG_EVIDENCE,
    _line,
    _row,
    raw_log,
)


def _span_owners(spans: pl.DataFrame) -> dict[str, dict]:
    """task id → the (conversation, message) its spans name (enqueue first, then the run)."""
    rows = (
        spans.filter(
            pl.col("task_id").is_not_null()
            & pl.col("message_id").is_not_null()
            & pl.col("conversation_id").is_not_null()
        )
        .with_columns(_o=pl.when(pl.col("hop") == c.HOP_ENQUEUE).then(0).otherwise(1))
        .sort("_o", "ts")
        .unique("task_id", keep="first")
    )
    return {r["task_id"]: r for r in rows.iter_rows(named=True)}


def _evidence_row(owner: dict, lines: list[dict], notes: dict[int, str] | None = None) -> dict:
    """One evidence-only row: log lines tied exactly to a message whose spans decide it."""
    notes = notes or {}
    text = [_line(r) + notes.get(id(r), "") for r in lines]
    first = lines[0]
    return _row(kind=LOG_EVIDENCE, service=first.get("service"), ts=first["ts"],
                conversation_id=owner["conversation_id"], message_id=owner["message_id"],
                task_id=owner.get("task_id"), name=first.get("name") or "app",
                event=LOG_EVIDENCE, confidence="exact",
                detail="\n".join(dict.fromkeys(text)))  # fmt: skip


def _task_evidence(rows: pl.DataFrame, owner: dict, lost: dict | None) -> list[dict]:
    """The log lines of a task whose run has spans: evidence of its message, never a run.

    Celery's lines and the app's lines carrying the task id join exactly; the worker's
    ``WorkerLostError`` line (no task id) joins when it was the one task open there.
    """
    recs = [r for r in rows.to_dicts() if not r.get("conversation_id")
            or r["conversation_id"] == owner["conversation_id"]]  # fmt: skip
    notes: dict[int, str] = {}
    if lost is not None:
        recs.append(lost)
        notes[id(lost)] = (
            f" [no task id on this line: the one task open on {lost.get('service') or '?'} then]"
        )
    if not recs:
        return []
    return [_evidence_row(owner, sorted(recs, key=lambda r: r["ts"]), notes)]


def _message_evidence(frame: pl.DataFrame) -> list[dict]:
    """App lines naming a message id its spans carry (no task id): evidence of that message."""
    raw = frame.filter(raw_log() & pl.col("message_id").is_not_null() & pl.col("task_id").is_null())
    if raw.is_empty():
        return []
    spans = frame.filter((pl.col("source") != "log") & pl.col("message_id").is_not_null())
    owners = {
        r["message_id"]: r
        for r in spans.filter(pl.col("conversation_id").is_not_null())
        .select("message_id", "conversation_id")
        .unique("message_id", keep="first")
        .iter_rows(named=True)
    }
    out = []
    for (message,), rows in raw.sort("ts").group_by("message_id", maintain_order=True):
        owner = owners.get(message)
        if owner is None:
            continue
        recs = [r for r in rows.to_dicts() if not r.get("conversation_id")
                or r["conversation_id"] == owner["conversation_id"]]  # fmt: skip
        if recs:
            out.append(_evidence_row(owner, recs))
    return out
