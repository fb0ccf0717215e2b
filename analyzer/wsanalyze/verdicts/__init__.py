"""Verdicts: how far each message got, why it stopped, and what that means for the conversation.

Data flows one way: the event table → facts per message and connection (lazy
aggregations, ``facts``) → the first matching rule of ``rules`` (one module per
cause, evaluated as polars expressions) → result objects (``wsanalyze.report``).

    report = analyze_conversation(events, "abc", window_end=result.window_end)
    rows = summarize_conversations(events, window_end=result.window_end)
    lost = aggregate_lost(events, window_end=result.window_end)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from wstrace import conventions as c

from ..causes import hint_for
from ..report import (
    Chunks,
    ConnectionCounts,
    ConnectionSummary,
    ConnectionVerdict,
    ConversationReport,
    ConversationSummary,
    LostGroup,
    LostReport,
    MessageVerdict,
    StreamCounts,
    Verdict,
)
from . import facts as F
from .answers import annotate, breakdown, fill_ids
from .chains import attach
from .closecodes import CloseCodes, cause_hop, code_cause, code_hop
from .evidence import chain_lines
from .invariants import enforce, strict, violations
from .logchains import SENDS_LOGGED, is_chain_log, log_chains, raw_log
from .rules import RULES, Rule

HANDSHAKE_TIMEOUT = timedelta(seconds=4.5)
"""A refused handshake that took this long hit Daphne's websocket_connect_timeout (5 s)."""
DEFAULT_IN_FLIGHT = timedelta(seconds=5)
"""Evidence that ends this close to the end of the data may still be on its way."""

_JWT = r"(?i)jwt|token|signature|expired|decode"
_RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


def _lit(value: pl.Expr | str) -> pl.Expr:
    return pl.lit(value) if isinstance(value, str) else value


def _first_match(rules: Sequence[Rule], attr: str) -> pl.Expr:
    out = None
    for rule in rules:
        value = pl.lit(rule.name) if attr == "name" else _lit(getattr(rule, attr))
        out = pl.when(rule.when).then(value) if out is None else out.when(rule.when).then(value)
    return out.otherwise(None)


def _tables(close_codes: CloseCodes | None) -> tuple[dict, dict]:
    overrides = dict(close_codes or {})
    return overrides, {**c.DEFAULT_CLOSE_CODES, **overrides}


def connection_verdicts(
    events: pl.LazyFrame, close_codes: CloseCodes | None = None
) -> pl.LazyFrame:
    """Connection facts plus ``outcome``, ``cause`` and ``hop`` per connection."""
    overrides, table = _tables(close_codes)
    n = pl.col
    refused = n("handshake_rejected") | (n("auth_error") & ~n("has_accept"))
    refused_cause = pl.coalesce(
        code_cause("close_code", overrides),
        n("connect_cause"),
        # a refusal whose reason the app logged (logchains: its reject line's cause)
        n("server_close_cause"),
        pl.when(n("origin_denied")).then(pl.lit("origin_rejected")),
        pl.when(n("anonymous")).then(pl.lit("auth_rejected")),
        n("auth_cause"),
        pl.when(n("auth_exc").str.contains(_JWT)).then(pl.lit("auth_rejected")),
        code_cause("close_code", table),
        pl.when(n("connect_duration") >= HANDSHAKE_TIMEOUT).then(pl.lit("handshake_timeout")),
        pl.lit("handshake_rejected"),
    )
    closed_cause = pl.coalesce(
        code_cause("close_code", overrides),
        n("server_close_cause"),
        code_cause("close_code", table),
    )
    crash_cause = pl.coalesce(n("disconnect_cause"), pl.lit("consumer_error"))
    frame = F.connection_facts(events).with_columns(
        _refused_cause=refused_cause, _closed_cause=closed_cause
    )
    outcome = (
        pl.when(refused)
        .then(pl.lit("rejected"))
        .when(n("crashed"))
        .then(pl.lit("lost"))
        .when(n("server_closed") & n("_closed_cause").is_not_null())
        .then(
            pl.when(n("_closed_cause") == "consumer_error")
            .then(pl.lit("lost"))
            .otherwise(pl.lit("rejected"))
        )
        .when(n("disconnected") & (n("close_code") == 1006) & ~n("server_closed"))
        .then(pl.lit("lost"))
        .when(n("disconnected") | n("server_closed"))
        .then(pl.lit("delivered"))
        .otherwise(pl.lit("in_flight"))
    )
    cause = (
        pl.when(refused)
        .then(n("_refused_cause"))
        .when(n("crashed"))
        .then(crash_cause)
        .when(n("server_closed") & n("_closed_cause").is_not_null())
        .then(n("_closed_cause"))
        .when(n("disconnected") & (n("close_code") == 1006) & ~n("server_closed"))
        .then(pl.lit("idle_timeout"))
        .otherwise(pl.lit("ok"))
    )
    return (
        frame.with_columns(outcome=outcome, cause=cause)
        .with_columns(
            hop=pl.when(n("cause") == "ok")
            .then(pl.lit(None, pl.String))
            .otherwise(
                pl.coalesce(
                    code_hop("close_code", overrides),
                    cause_hop("cause"),
                    code_hop("close_code", table),
                )
            )
        )
        .with_columns(
            close_ts=pl.coalesce("server_close_ts", "disconnect_ts", "opened"),
            confidence=F.confidence_name("confidence_rank"),
        )
        .drop("_refused_cause", "_closed_cause")
    )


def _window_end(events: pl.LazyFrame, window_end: datetime | None) -> datetime | None:
    if window_end is not None:
        return window_end
    return (
        events.select(pl.max_horizontal(pl.col("end_ts").max(), pl.col("ts").max()))
        .collect()
        .item()
    )


def message_verdicts(
    events: pl.LazyFrame,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
    rules: Sequence[Rule] = RULES,
) -> pl.LazyFrame:
    """Message facts joined with their connection, plus ``rule``/``outcome``/``hop``/``cause``."""
    end = _window_end(events, window_end)
    conns = connection_verdicts(events, close_codes).select(
        "conversation_id",
        "connection_id",
        *[
            pl.col(name).alias(f"conn_{name}")
            for name in (
                "outcome",
                "cause",
                "hop",
                "closed",
                "closed_by",
                "close_code",
                "close_ts",
                "close_parent",
                "confidence_rank",
                "log_only",
            )
        ],
    )
    n = pl.col
    frame = (
        F.message_facts(events)
        .join(conns, on=["conversation_id", "connection_id"], how="left", nulls_equal=False)
        .join(F.consumer_layers(events), on="conversation_id", how="left")
        .join(F.revokers(events), left_on="enq_task_id", right_on="task_id", how="left")
        .join(F.frame_types(events), left_on="revoked_by", right_on="message_id", how="left")
        .join(F.consumed_queues(events), how="cross")
        .join(F.worker_logs(events), how="cross")
        .join(F.send_services(events), how="cross")
        .with_columns(
            consumer_layers=n("consumer_layers").fill_null(pl.lit([], pl.List(pl.String))),
            consumed_queues=n("consumed_queues").fill_null(pl.lit([], pl.List(pl.String))),
            window_end=pl.lit(end, dtype=pl.Datetime("ns", "UTC")),
        )
        .with_columns(
            # a zero horizon means nothing is in flight
            recent=((n("window_end") - n("last_ts")) <= pl.lit(in_flight))
            & (in_flight > timedelta(0)),
            idle_s=(n("window_end") - n("last_ts")).dt.total_milliseconds() / 1000.0,
        )
    )
    frame = _log_facts(frame).with_columns(
        rule=_first_match(rules, "name"),
        outcome=_first_match(rules, "outcome"),
        hop=_first_match(rules, "hop"),
        cause=_first_match(rules, "cause"),
    )
    return frame.with_columns(
        violations=violations(),
        # a message the server's close killed failed when the close happened
        failed_ts=pl.when(n("rule").is_in(["server_close", "refused"]))
        .then(pl.coalesce("conn_close_ts", "err_ts", "empty_publish_ts", "last_ts"))
        .otherwise(pl.coalesce("err_ts", "empty_publish_ts", "last_ts")),
        is_failure=n("outcome").is_in(["lost", "rejected"])
        | ((n("outcome") == "delivered") & (n("cause") != "ok")),
        confidence=pl.when(n("rule").is_in(INFERRED_RULES))
        .then(pl.lit("inferred"))
        .otherwise(F.confidence_name("_conf_rank")),
    ).drop("_conf_rank")


INFERRED_RULES = ("log_delivered", "log_handled")
"""Rules whose verdict no line states: their confidence is ``inferred``."""

ANSWER_GRACE = timedelta(seconds=0.5)
"""A worker logs success a moment after the last frame went out: a close this soon after the
task's end does not prove the answer was cut off."""


CRASH_AFTER_RECEIVE = timedelta(seconds=2)
"""Daphne notices a dead consumer on its next check (about once a second): a crash this soon
after a frame was received may be the frame's."""


def _log_facts(frame: pl.LazyFrame) -> pl.LazyFrame:
    """What log-only messages can show (``verdicts.logchains``): deliveries are never logged.

    A log-only message is complete when its task succeeded before its connection closed
    (or the connection is still open): ``log_delivered`` then says delivered, inferred.
    It was cut off (``log_cut``) when the task ended surely after the close: a Daphne
    stamp is a whole second, so the close may be up to 1 s later than it reads.
    """
    n = pl.col
    whole = (n("conn_closed").dt.nanosecond() == 0) & n("conn_log_only").fill_null(False)
    grace = pl.lit(ANSWER_GRACE)
    close_hi = n("conn_closed") + pl.when(whole).then(pl.lit(timedelta(seconds=1))).otherwise(grace)
    # the task's success is logged a moment after its last frame went out
    close_lo = n("conn_closed") + pl.when(whole).then(pl.lit(timedelta(0))).otherwise(grace)
    before = (
        (n("tasks_done") > 0)
        & ~n("task_open")
        & (n("conn_closed").is_null() | (n("task_end_ts") <= close_lo))
    ).fill_null(False)
    pending = n("task_open") | ((n("n_enqueue") > 0) & ~n("task_seen"))
    closed = n("conn_closed").is_not_null()
    # received, no task, no answer expected, no crash of its socket: handled in the consumer
    handled = (
        n("handled")
        & (n("n_receive") > 0)
        & ~n("task_seen")  # a task logged as run without its enqueue line is still work
        & (n("conn_close_code") != 1011).fill_null(True)
        & (n("conn_cause") != "consumer_error").fill_null(True)
    )
    # received, no work started, and its socket crashed moments later: the crash took it
    crashed_on_it = (
        (n("n_enqueue") == 0)
        & (n("task_runs") == 0)
        & (n("n_receive") > 0)
        & (n("conn_outcome") == "lost")
        & (n("first_ts") <= close_hi)
        & (n("first_ts") >= n("conn_closed") - pl.lit(CRASH_AFTER_RECEIVE))
    )
    return frame.with_columns(
        conn_close_hi=close_hi,
        log_before=before,
        # the app logs the frames it sends on this message's socket, and none for it
        log_unsent=(
            n("log_only")
            & (n("n_send") == 0)
            & n("receive_service").is_not_null()
            & n("send_services").list.contains(n("receive_service"))
        ).fill_null(False),
        # cut off by the close: ended surely after it, or still waiting when it came (and
        # the logs end soon after, so nothing else explains the missing end)
        log_cut=(
            n("log_only")
            & closed
            & (
                (n("task_end_ts").is_not_null() & (n("task_end_ts") > close_hi))
                | (pending & n("recent") & (n("first_ts") <= n("conn_closed")))
                | crashed_on_it
            )
        ).fill_null(False),
        complete=pl.when(n("log_only"))
        .then((before | handled) & ~n("any_error") & ~n("channel_full") & ~n("empty_publish"))
        .otherwise(n("complete")),
        # what logs cannot show (publishes, deliveries) is not "missing": the first hop
        # after the task that a line could show is the socket's
        first_missing=pl.when(n("log_only"))
        .then(
            pl.when((n("n_enqueue") > 0) & ~n("task_seen"))
            .then(pl.lit(c.HOP_TASK))
            .when(n("task_seen") | (n("n_publish") > 0))
            .then(pl.lit(c.HOP_DELIVER))
            .otherwise(n("first_missing"))
        )
        .otherwise(n("first_missing")),
        _conf_rank=pl.max_horizontal("confidence_rank", "conn_confidence_rank"),
    )


# --- one conversation --------------------------------------------------------------------------


def _message_summary(f: Mapping[str, Any]) -> str:
    chunks = f"{f['published']} published, {f['delivered']} delivered, {f['sent']} sent"
    if f.get("side_effects"):
        chunks += f"; {f['side_effects']} side-effect publish(es) to other groups"
    if f["outcome"] == "delivered" and f["cause"] == "ok":
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


def _message(
    f: Mapping[str, Any],
    streams: Sequence[StreamCounts] = (),
    receivers: Sequence[ConnectionCounts] = (),
) -> MessageVerdict:
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


def _connection(f: Mapping[str, Any]) -> ConnectionVerdict:
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


_HOP_RANK = {hop: i for i, hop in enumerate(c.HOPS)}
_CONF_RANK = {"exact": 0, "path": 1, "time": 2, "inferred": 3}
NO_MESSAGES_IN_LOGS = (
    "from logs only: the connection opened and closed and no line ties a task or message to "
    "it; Daphne logs no frames, so whether messages were sent (and a server close code) is "
    "not in the logs. wstrace's ws.receive spans, or app lines naming the conversation, "
    "would tell"
)


def _rank(when: datetime | None, kind: int, hop: str | None) -> tuple:
    """Sort key of a failure: time, then messages before connections, then earlier hops."""
    stamp = when.timestamp() if when else float("inf")
    return (stamp, kind, _HOP_RANK.get(hop or "", 99))


def conversation_verdict(
    connections: Sequence[ConnectionVerdict], messages: Sequence[MessageVerdict]
) -> Verdict:
    """The first failure in time, else delivered/in_flight."""
    failures: list[tuple[tuple, Verdict]] = []
    for conn in connections:
        if conn.outcome in ("rejected", "lost"):
            text = f"connection {conn.connection_id} {conn.summary}"
            key = _rank(conn.failed_ts or conn.closed or conn.opened, 1, conn.hop)
            verdict = Verdict(conn.outcome, conn.hop, conn.cause, text, conn.confidence)
            failures.append((key, verdict))
    for msg in messages:
        if msg.outcome in ("lost", "rejected") or (
            msg.outcome == "delivered" and msg.cause != "ok"
        ):
            text = f"message {msg.message_id} {msg.summary}"
            # from logs, a close that cut answers off is told by the connection itself
            consequence = msg.log_only and msg.rule == "server_close"
            key = _rank(msg.failed_ts, 2 if consequence else 0, msg.hop)
            failures.append((key, Verdict(msg.outcome, msg.hop, msg.cause, text, msg.confidence)))
    if failures:
        failures.sort(key=lambda item: item[0])
        return failures[0][1]
    pending = [m for m in messages if m.outcome == "in_flight"]
    if pending:
        first = pending[0]
        return Verdict(
            "in_flight",
            first.hop,
            first.cause,
            f"message {first.message_id} {first.summary}",
            first.confidence,
        )
    if messages:
        weakest = max((m.confidence for m in messages), key=lambda x: _CONF_RANK.get(x, 0))
        text = f"all {len(messages)} message(s) delivered"
        if weakest == "inferred":
            text += " (inferred from logs: no line shows the answers reaching the client)"
        return Verdict("delivered", "send", "ok", text, weakest)
    if connections and all(k.evidence for k in connections):  # log lines only
        return Verdict("unknown", None, "unknown", NO_MESSAGES_IN_LOGS, "path")
    if connections:
        return Verdict("delivered", None, "ok", "connected; no messages were sent", "exact")
    return Verdict("lost", None, "unknown", "no spans for this conversation")


def analyze_conversation(
    events: pl.LazyFrame,
    conversation_id: str,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
    problems: Sequence[str] = (),
    sources: Sequence[str] = (),
) -> ConversationReport:
    """The full report for one conversation: verdicts, evidence, hints and the merged timeline."""
    from ..timeline import build_timeline

    events = log_chains(events)
    end = _window_end(events, window_end)
    is_worker = (
        (pl.col("event") == c.EV_WORKER_READY) | (pl.col("name") == c.SPAN_WORKER_READY)
    ).fill_null(False)
    # rows the instrumentation could not tag (an HTTP-started re-run, a pub/sub read)
    # join their conversation before it is selected
    events = fill_ids(events)
    own = events.filter(pl.col("conversation_id") == conversation_id)
    traces = own.select(pl.col("trace_id").drop_nulls().unique())
    tasks = own.select(pl.col("task_id").drop_nulls().unique())
    loose = events.filter(pl.col("conversation_id").is_null() & ~is_worker)
    orphans = pl.concat(
        [
            loose.join(traces, on="trace_id", how="semi"),
            # log lines (no trace) that name one of the conversation's tasks
            loose.filter(pl.col("trace_id").is_null()).join(tasks, on="task_id", how="semi"),
        ]
    )
    # the workers' raw log lines stay in: whether workers logged at all is a fact (no_worker)
    workers_logged = raw_log() & (pl.col("name") == "celery").fill_null(False)
    # which services log the answers they send: a fact of the whole log (log_unsent)
    sends_logged = (pl.col("event") == SENDS_LOGGED).fill_null(False)
    workers = events.filter(
        is_worker | sends_logged | (workers_logged & pl.col("conversation_id").is_null())
    )
    table = attach(fill_ids(pl.concat([own, orphans, workers]).unique(maintain_order=True)))
    mine = table.filter(
        (pl.col("conversation_id") == conversation_id) | is_worker | workers_logged | sends_logged
    ).lazy()
    conns = (
        connection_verdicts(mine, close_codes)
        .filter(pl.col("conversation_id") == conversation_id)
        .sort("opened", nulls_last=True)
        .collect()
    )
    msgs = (
        message_verdicts(mine, window_end=end, in_flight=in_flight, close_codes=close_codes)
        .filter(pl.col("conversation_id") == conversation_id)
        .sort("first_ts", nulls_last=True)
        .collect()
    )
    problems = [*problems, *enforce(msgs)]
    annotated = annotate(table.lazy()).collect()
    streams, receivers = _breakdown(annotated)
    connections = tuple(_connection(row) for row in conns.iter_rows(named=True))
    messages = tuple(
        _message(row, streams.get(row["message_id"], ()), receivers.get(row["message_id"], ()))
        for row in msgs.iter_rows(named=True)
    )
    conv_rows = annotated.filter((pl.col("conversation_id") == conversation_id) & ~is_chain_log())
    return ConversationReport(
        conversation_id=conversation_id,
        verdict=conversation_verdict(connections, messages),
        connections=connections,
        messages=messages,
        timeline=build_timeline(conv_rows),
        window_end=end,
        problems=tuple(problems),
        sources=tuple(sources),
    )


def _breakdown(
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


def list_connections(
    events: pl.LazyFrame, close_codes: CloseCodes | None = None
) -> list[ConnectionSummary]:
    """Every connection (those of no conversation too), newest first."""
    events = log_chains(events)
    frame = (
        connection_verdicts(events, close_codes)
        .sort("opened", descending=True, nulls_last=True)
        .collect()
    )
    return [
        ConnectionSummary(
            connection_id=r["connection_id"],
            conversation_id=r["conversation_id"],
            route=r.get("route"),
            opened=r.get("opened"),
            closed=r.get("closed"),
            close_code=r.get("close_code"),
            closed_by=r.get("closed_by"),
            outcome=r["outcome"],
            cause=r["cause"],
            hop=r.get("hop"),
            confidence=r.get("confidence") or "exact",
        )
        for r in frame.iter_rows(named=True)
    ]


def known_conversations(events: pl.LazyFrame) -> list[str]:
    """Every conversation id in the table, sorted."""
    frame = events.select(pl.col("conversation_id").drop_nulls().unique().sort()).collect()
    return frame.to_series().to_list()


# --- many conversations ----------------------------------------------------------------------


def _failures(events: pl.LazyFrame, msgs: pl.LazyFrame, conns: pl.LazyFrame) -> pl.LazyFrame:
    """Messages and connections as one frame of candidate verdicts per conversation."""
    m = msgs.select(
        "conversation_id",
        pl.lit("message").alias("kind"),
        pl.col("message_id").alias("item_id"),
        "outcome",
        "hop",
        "cause",
        pl.col("failed_ts").alias("at"),
        "is_failure",
        pl.when((pl.col("rule") == "server_close") & pl.col("log_only"))
        .then(pl.lit(2))
        .otherwise(pl.lit(0))
        .alias("kind_rank"),
        "confidence",
        pl.lit(False).alias("log_conn"),
    )
    k = conns.select(
        "conversation_id",
        pl.lit("connection").alias("kind"),
        pl.col("connection_id").alias("item_id"),
        "outcome",
        "hop",
        "cause",
        pl.col("close_ts").alias("at"),
        pl.col("outcome").is_in(["rejected", "lost"]).alias("is_failure"),
        pl.lit(1).alias("kind_rank"),
        "confidence",
        pl.col("log_only").fill_null(False).alias("log_conn"),
    )
    return pl.concat([m, k], how="vertical_relaxed")


def summarize_conversations(
    events: pl.LazyFrame,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
) -> list[ConversationSummary]:
    """One verdict per conversation (first failure in time), newest first."""
    events = log_chains(events)
    end = _window_end(events, window_end)
    msgs = message_verdicts(events, window_end=end, in_flight=in_flight, close_codes=close_codes)
    if strict():  # the test suite: every verdict listed is checked (costs a second pass)
        enforce(_broken(msgs))
    conns = connection_verdicts(events, close_codes)
    hop_rank = pl.col("hop").replace_strict(_HOP_RANK, default=99, return_dtype=pl.Int32)
    items = _failures(events, msgs, conns).sort(
        [pl.col("at"), pl.col("kind_rank"), hop_rank], nulls_last=True
    )
    is_msg = pl.col("kind") == "message"
    per = items.group_by("conversation_id").agg(
        pl.struct("kind", "item_id", "outcome", "hop", "cause", "confidence")
        .filter(pl.col("is_failure"))
        .first()
        .alias("fail"),
        pl.struct("kind", "item_id", "outcome", "hop", "cause", "confidence")
        .filter(is_msg & (pl.col("outcome") == "in_flight"))
        .first()
        .alias("pending"),
        pl.col("confidence")
        .filter(is_msg)
        .replace_strict(_CONF_RANK, default=0, return_dtype=pl.Int32)
        .max()
        .alias("weakest"),
        pl.col("log_conn").sum().alias("log_connections"),
        (pl.col("kind") == "connection").sum().alias("connections"),
        is_msg.sum().alias("messages"),
        (is_msg & (pl.col("outcome") == "lost")).sum().alias("lost"),
        (is_msg & (pl.col("outcome") == "delivered")).sum().alias("delivered"),
        (is_msg & (pl.col("outcome") == "in_flight")).sum().alias("in_flight"),
    )
    spans = (
        events.filter(pl.col("conversation_id").is_not_null())
        .group_by("conversation_id")
        .agg(pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts"))
    )
    rows = (
        spans.join(per, on="conversation_id", how="left")
        .sort("first_ts", descending=True)
        .collect()
    )
    out = []
    for row in rows.iter_rows(named=True):
        out.append(
            ConversationSummary(
                conversation_id=row["conversation_id"],
                verdict=_summary_verdict(row),
                first_ts=row["first_ts"],
                last_ts=row["last_ts"],
                connections=row["connections"] or 0,
                messages=row["messages"] or 0,
                lost=row["lost"] or 0,
                delivered=row["delivered"] or 0,
                in_flight=row["in_flight"] or 0,
            )
        )
    return out


def _broken(msgs: pl.LazyFrame) -> pl.DataFrame:
    """The message verdicts that break an invariant."""
    return (
        msgs.filter(pl.col("violations").list.len() > 0)
        .select("message_id", "outcome", "hop", "cause", "violations")
        .collect()
    )


def _summary_verdict(row: Mapping[str, Any]) -> Verdict:
    item = row.get("fail") or row.get("pending")
    if item and item.get("outcome"):
        what = f"{item['kind']} {item['item_id']}"
        text = f"{what}: {item['outcome']} at {item['hop']} ({item['cause']})"
        return Verdict(item["outcome"], item["hop"], item["cause"], text, item.get("confidence"))
    if row.get("messages"):
        names = {v: k for k, v in _CONF_RANK.items()}
        weakest = names.get(row.get("weakest") or 0, "exact")
        text = f"all {row['messages']} message(s) delivered"
        if weakest == "inferred":
            text += " (inferred from logs: no line shows the answers reaching the client)"
        return Verdict("delivered", "send", "ok", text, weakest)
    if row.get("connections") and row.get("log_connections") == row.get("connections"):
        return Verdict("unknown", None, "unknown", NO_MESSAGES_IN_LOGS, "path")
    if row.get("connections"):
        return Verdict("delivered", None, "ok", "connected; no messages were sent", "exact")
    return Verdict("lost", None, "unknown", "no connection or message spans")


def aggregate_lost(
    events: pl.LazyFrame,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
    examples: int = 3,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LostReport:
    """Lost messages grouped by hop and cause, most frequent first.

    ``since``/``until`` select messages by when they started; each is judged on all
    of its evidence.
    """
    events = log_chains(events)
    end = _window_end(events, window_end)
    msgs = message_verdicts(events, window_end=end, in_flight=in_flight, close_codes=close_codes)
    if since is not None:
        msgs = msgs.filter(pl.col("first_ts") >= since)
    if until is not None:
        msgs = msgs.filter(pl.col("first_ts") <= until)
    if strict():
        enforce(_broken(msgs))
    frame = msgs.select("conversation_id", "message_id", "outcome", "hop", "cause").collect()
    lost = frame.filter(pl.col("outcome") == "lost")
    groups = (
        lost.group_by("hop", "cause")
        .agg(
            pl.len().alias("count"),
            pl.col("conversation_id").n_unique().alias("conversations"),
            pl.concat_str("conversation_id", pl.lit("/"), "message_id")
            .head(examples)
            .alias("examples"),
        )
        .sort(["count", "hop", "cause"], descending=[True, False, False])
    )
    return LostReport(
        total_messages=frame.height,
        lost=lost.height,
        groups=tuple(
            LostGroup(r["hop"], r["cause"], r["count"], r["conversations"], tuple(r["examples"]))
            for r in groups.iter_rows(named=True)
        ),
    )


__all__ = [
    "DEFAULT_IN_FLIGHT",
    "aggregate_lost",
    "analyze_conversation",
    "connection_verdicts",
    "conversation_verdict",
    "known_conversations",
    "list_connections",
    "message_verdicts",
    "summarize_conversations",
]
