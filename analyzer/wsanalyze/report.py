"""The result objects every renderer takes.

Verdicts produce these; terminal, JSON, HTML and Mermaid views only read them.
Field names follow the ``--json`` contract in docs/verdicts.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Verdict:
    """Outcome, hop and cause of a message, a connection or a conversation."""

    outcome: str
    hop: str | None
    cause: str
    summary: str = ""
    # how sure: "exact" (spans, or log lines with exact ids), "path", "time", "inferred"
    confidence: str | None = None


@dataclass(frozen=True)
class StreamCounts:
    """One stream of a message's answer: the run that produced it and what became of its chunks."""

    stream: str
    producer: str
    published: int = 0
    delivered: int = 0
    sent: int = 0
    gaps: int = 0


@dataclass(frozen=True)
class ConnectionCounts:
    """What one receiving connection got of a message's answer."""

    connection_id: str
    delivered: int = 0
    sent: int = 0


@dataclass(frozen=True)
class Chunks:
    """Answering publish spans, their deliveries (one per receiving connection) and frames sent."""

    published: int = 0
    delivered: int = 0
    sent: int = 0
    side_effects: int = 0
    streams: tuple[StreamCounts, ...] = ()
    connections: tuple[ConnectionCounts, ...] = ()


@dataclass(frozen=True)
class ConnectionVerdict:
    """One WebSocket connection: when it opened and closed, and why it ended."""

    connection_id: str
    opened: datetime | None
    closed: datetime | None
    close_code: int | None
    closed_by: str | None
    outcome: str
    cause: str
    hop: str | None = None
    summary: str = ""
    failed_ts: datetime | None = None
    confidence: str = "exact"  # see Verdict.confidence
    evidence: tuple[str, ...] = ()  # the log lines it was read from (spans need none)


@dataclass(frozen=True)
class MessageVerdict:
    """How far one client message got, and why it stopped."""

    message_id: str
    connection_id: str | None
    outcome: str
    hop: str | None
    cause: str
    chunks: Chunks
    hops_seen: tuple[str, ...]
    evidence: tuple[str, ...]
    hint: str
    summary: str
    first_ts: datetime | None = None
    failed_ts: datetime | None = None
    rule: str = ""
    frame_type: str | None = None
    app_ids: tuple[str, ...] = ()  # the ids the app itself put in the frames
    confidence: str = "exact"  # see Verdict.confidence
    log_only: bool = False  # read from log lines alone (no span of it)


@dataclass(frozen=True)
class TimelineEntry:
    """One row of the merged timeline."""

    ts: datetime
    offset_ms: float
    source: str
    service: str | None
    hop: str | None
    event: str | None
    message_id: str | None
    connection_id: str | None
    seq: int | None
    status: str | None
    detail: str
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    name: str | None = None
    failed: bool = False
    confidence: str | None = None  # log rows: how the row was tied to the conversation


@dataclass(frozen=True)
class ConversationReport:
    """Everything ``wsanalyze conversation <id>`` knows about one conversation."""

    conversation_id: str
    verdict: Verdict
    connections: tuple[ConnectionVerdict, ...]
    messages: tuple[MessageVerdict, ...]
    timeline: tuple[TimelineEntry, ...]
    window_end: datetime | None = None
    problems: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConversationSummary:
    """One line of ``wsanalyze conversations``."""

    conversation_id: str
    verdict: Verdict
    first_ts: datetime | None
    last_ts: datetime | None
    connections: int
    messages: int
    lost: int
    delivered: int
    in_flight: int


@dataclass(frozen=True)
class ConnectionSummary:
    """One line of ``wsanalyze connections``: any connection, with or without a conversation."""

    connection_id: str
    conversation_id: str | None
    route: str | None
    opened: datetime | None
    closed: datetime | None
    close_code: int | None
    closed_by: str | None
    outcome: str
    cause: str
    hop: str | None = None
    confidence: str = "exact"  # see Verdict.confidence


@dataclass(frozen=True)
class LostGroup:
    """Lost messages sharing one hop and cause."""

    hop: str | None
    cause: str
    count: int
    conversations: int
    examples: tuple[str, ...] = ()  # "conversation/message" ids


@dataclass(frozen=True)
class LostReport:
    """Lost messages aggregated by hop and cause."""

    total_messages: int
    lost: int
    groups: tuple[LostGroup, ...] = field(default_factory=tuple)
    problems: tuple[str, ...] = ()
