"""Rows of the verdict frames → the result objects of ``wsanalyze.report``.

A message's row becomes a ``MessageVerdict`` with its summary line, its evidence
(the chain, what its rule shows, its streams and receivers, its log lines) and a
fix hint; a connection's row a ``ConnectionVerdict``. Nothing here judges: the
rules already did (``engine``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from wstrace import conventions as c

from ..causes import hint_for
from ..report import Chunks, ConnectionCounts, ConnectionVerdict, MessageVerdict, StreamCounts
from .breakdown import breakdown
from .evidence import chain_lines
from .rules import RULES, Rule

_RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


_LOG_DELIVERED = {
    "log_sent": "the app logged the answer sent on the socket (from logs)",
    "log_delivered": "the task succeeded while the connection was open (inferred from logs)",
    "log_handled": "received and handled in the consumer, no task (inferred from logs)",
}


def _message_summary(f: Mapping[str, Any]) -> str:
    chunks = f"{f['published']} published, {f['delivered']} delivered, {f['sent']} sent"
    if f.get("side_effects"):
        chunks += f"; {f['side_effects']} side-effect publish(es) to other groups"
    if f["outcome"] == "delivered" and f["cause"] == "ok":
        # from logs alone no chunk is counted: say what the lines show instead
        if f.get("rule") in _LOG_DELIVERED:
            return f"delivered: {_LOG_DELIVERED[f['rule']]}"
        if f.get("handled") and not f.get("published"):
            what = f"a {f['frame_type']!r} frame" if f.get("frame_type") else "the frame"
            how = (
                f", answered directly ({f['direct_sent']} frame(s))" if f.get("direct_sent") else ""
            )
            return f"delivered: handled; {what} started no work by design{how} ({chunks})"
        if f.get("finished_quietly") and not f.get("published"):
            return f"delivered: the task finished without answering this conversation ({chunks})"
        streams = f", {f['streams']} streams" if (f.get("streams") or 0) > 1 else ""
        return f"delivered ({chunks}{streams})"
    if f["outcome"] == "in_flight":
        return f"still in flight at {f['hop']} when the data ends ({chunks})"
    return f"{f['outcome']} at {f['hop']}: {f['cause']} ({chunks})"


def message_result(
    f: Mapping[str, Any],
    streams: Sequence[StreamCounts] = (),
    receivers: Sequence[ConnectionCounts] = (),
) -> MessageVerdict:
    """The report object of one message verdict row, with its evidence and hint."""
    rule = _RULES_BY_NAME.get(f["rule"])
    specific = rule.evidence(f) if rule else []
    hint = (rule.hint(f) if rule else None) or hint_for(f["cause"])
    hops = tuple(hop for hop in c.MESSAGE_HOPS if f.get(f"n_{hop}"))
    chain = [] if f.get("log_only") else chain_lines(f)
    logged = list(dict.fromkeys([*(f.get("log_lines") or ()), *(f.get("log_evidence") or ())]))
    evidence = [*chain, *specific, *_stream_lines(streams, receivers), *logged]
    return MessageVerdict(
        message_id=f["message_id"],
        connection_id=f.get("connection_id"),
        outcome=f["outcome"],
        hop=f["hop"],
        cause=f["cause"],
        chunks=Chunks(
            f["published"],
            f["delivered"],
            f["sent"],
            side_effects=f.get("side_effects") or 0,
            streams=tuple(streams),
            connections=tuple(receivers),
        ),
        hops_seen=hops,
        evidence=tuple(evidence),
        hint=hint,
        summary=_message_summary(f),
        first_ts=f.get("first_ts"),
        failed_ts=f.get("failed_ts"),
        rule=f["rule"] or "",
        frame_type=f.get("frame_type"),
        app_ids=tuple(f.get("app_ids") or ()),
        confidence=f.get("confidence") or "exact",
        log_only=bool(f.get("log_only")),
    )


def _stream_lines(
    streams: Sequence[StreamCounts], receivers: Sequence[ConnectionCounts]
) -> list[str]:
    """Which stream lost chunks (when there are several, or a gap), and who received what."""
    lines = []
    if len(streams) > 1 or any(st.gaps for st in streams):
        for st in streams:
            gap = f", {st.gaps} chunk(s) delivered to nobody" if st.gaps else ""
            lines.append(
                f"stream from {st.producer}: published {st.published}, delivered "
                f"{st.delivered}, sent {st.sent}{gap}"
            )
    if len(receivers) > 1:
        got = ", ".join(f"{k.connection_id} {k.delivered}/{k.sent}" for k in receivers)
        lines.append(f"received (delivered/sent) per connection: {got}")
    return lines


def connection_result(f: Mapping[str, Any]) -> ConnectionVerdict:
    """The report object of one connection verdict row, with its summary line."""
    code = f.get("close_code")
    if f["outcome"] == "rejected":
        summary = f"rejected at {f['hop']}: {f['cause']}" + (f" (code {code})" if code else "")
    elif f["outcome"] == "in_flight":
        summary = "open when the data ends"
    else:
        shown = f"{code} " if code is not None else ""
        summary = f"closed {shown}by {f.get('closed_by') or '?'}: {f['cause']}"
    if f.get("log_only"):
        summary += " (from log lines)"
    return ConnectionVerdict(
        connection_id=f["connection_id"],
        opened=f.get("opened"),
        closed=f.get("closed"),
        close_code=code,
        closed_by=f.get("closed_by"),
        outcome=f["outcome"],
        cause=f["cause"],
        hop=f.get("hop"),
        summary=summary,
        failed_ts=f.get("close_ts"),
        confidence=f.get("confidence") or "exact",
        evidence=tuple(f.get("log_lines") or ()),
    )


def answer_counts(
    annotated: pl.DataFrame,
) -> tuple[dict[str, list[StreamCounts]], dict[str, list[ConnectionCounts]]]:
    """Per message: its answer's streams and what each receiving connection got."""
    stream_rows, receiver_rows = breakdown(annotated)
    streams: dict[str, list[StreamCounts]] = {}
    for r in stream_rows.iter_rows(named=True):
        streams.setdefault(r.pop("message_id"), []).append(StreamCounts(**r))
    receivers: dict[str, list[ConnectionCounts]] = {}
    for r in receiver_rows.iter_rows(named=True):
        receivers.setdefault(r.pop("message_id"), []).append(ConnectionCounts(**r))
    return streams, receivers
