"""The ``--json`` views. ``conversation_json`` is the docs/verdicts.md contract shape exactly;
extra keys are only ever added, never renamed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..causes import CauseInfo
from ..report import (
    ConnectionSummary,
    ConnectionVerdict,
    ConversationReport,
    ConversationSummary,
    LostReport,
    MessageVerdict,
    TimelineEntry,
    Verdict,
)


def iso(ts: datetime | None) -> str | None:
    """RFC 3339 with microseconds and a Z."""
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verdict_dict(v: Verdict) -> dict[str, Any]:
    out = {"outcome": v.outcome, "hop": v.hop, "cause": v.cause, "summary": v.summary}
    out["confidence"] = v.confidence  # additive
    return out


def connection_dict(k: ConnectionVerdict) -> dict[str, Any]:
    return {
        "connection_id": k.connection_id,
        "opened": iso(k.opened),
        "closed": iso(k.closed),
        "close_code": k.close_code,
        "outcome": k.outcome,
        "cause": k.cause,
        # additive
        "closed_by": k.closed_by,
        "hop": k.hop,
        "summary": k.summary,
        "confidence": k.confidence,
        "evidence": list(k.evidence),
    }


def message_dict(m: MessageVerdict) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "outcome": m.outcome,
        "hop": m.hop,
        "cause": m.cause,
        "chunks": {
            "published": m.chunks.published,
            "delivered": m.chunks.delivered,
            "sent": m.chunks.sent,
            # additive: real counts per stream and per receiving connection
            "side_effects": m.chunks.side_effects,
            "streams": [
                {
                    "stream": st.stream,
                    "producer": st.producer,
                    "published": st.published,
                    "delivered": st.delivered,
                    "sent": st.sent,
                    "gaps": st.gaps,
                }
                for st in m.chunks.streams
            ],
            "connections": [
                {"connection_id": k.connection_id, "delivered": k.delivered, "sent": k.sent}
                for k in m.chunks.connections
            ],
        },
        "evidence": list(m.evidence),
        "hint": m.hint,
        # additive
        "connection_id": m.connection_id,
        "summary": m.summary,
        "frame_type": m.frame_type,
        "app_ids": list(m.app_ids),
        "confidence": m.confidence,
    }


def timeline_dict(e: TimelineEntry) -> dict[str, Any]:
    return {
        "ts": iso(e.ts),
        "source": e.source,
        "service": e.service,
        "hop": e.hop,
        "event": e.event,
        "message_id": e.message_id,
        "seq": e.seq,
        "detail": e.detail,
        "trace_id": e.trace_id,
        # additive
        "offset_ms": round(e.offset_ms, 3),
        "connection_id": e.connection_id,
        "span_id": e.span_id,
        "status": e.status,
        "confidence": e.confidence,
    }


def conversation_json(report: ConversationReport) -> dict[str, Any]:
    """The contract object for ``conversation <id> --json``."""
    return {
        "conversation_id": report.conversation_id,
        "verdict": verdict_dict(report.verdict),
        "connections": [connection_dict(k) for k in report.connections],
        "messages": [message_dict(m) for m in report.messages],
        "timeline": [timeline_dict(e) for e in report.timeline],
        # additive
        "window_end": iso(report.window_end),
        "problems": list(report.problems),
    }


def conversations_json(rows: list[ConversationSummary]) -> list[dict[str, Any]]:
    """``conversations --json``: one object per conversation."""
    return [
        {
            "conversation_id": r.conversation_id,
            "verdict": verdict_dict(r.verdict),
            "first_ts": iso(r.first_ts),
            "last_ts": iso(r.last_ts),
            "connections": r.connections,
            "messages": r.messages,
            "delivered": r.delivered,
            "lost": r.lost,
            "in_flight": r.in_flight,
        }
        for r in rows
    ]


def connections_json(rows: list[ConnectionSummary]) -> list[dict[str, Any]]:
    """``connections --json``: one object per connection."""
    return [
        {
            "connection_id": r.connection_id,
            "conversation_id": r.conversation_id,
            "route": r.route,
            "opened": iso(r.opened),
            "closed": iso(r.closed),
            "close_code": r.close_code,
            "closed_by": r.closed_by,
            "outcome": r.outcome,
            "hop": r.hop,
            "cause": r.cause,
            "confidence": r.confidence,
        }
        for r in rows
    ]


def lost_json(report: LostReport) -> dict[str, Any]:
    """``lost --json``."""
    return {
        "messages": report.total_messages,
        "lost": report.lost,
        "groups": [
            {
                "hop": g.hop,
                "cause": g.cause,
                "count": g.count,
                "conversations": g.conversations,
                "examples": list(g.examples),
            }
            for g in report.groups
        ],
        "problems": list(report.problems),
    }


def explain_json(info: CauseInfo) -> dict[str, Any]:
    """``explain <cause> --json``."""
    return info.as_dict()


def dumps(data: Any) -> str:
    """Stable, readable JSON text."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
