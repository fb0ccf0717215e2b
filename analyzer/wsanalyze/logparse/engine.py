"""Records → event-table rows: every rule of every producer, vectorised over a column.

Per rule, a literal pre-filter (`needle`) keeps the candidates, one regex
extracts its named groups; when two rules claim a record the lower priority
wins. Records no rule claimed are read as the app's own structured lines
(`structured`: logfmt, JSON, the user's patterns — ids, close codes, levels,
task events; confidence "exact" when they carry an id); the rest still become
events when they carry wstrace's id fields or are logged at ERROR/CRITICAL
(event `log_error`).

Every text a row shows (`detail`, `exception`, `status_message`, `attributes`)
passes through `redaction.redacted` here, where rows are made, so no view can
show a token, a `Bearer …` value, a JWT, a cookie or a DRF `Token …` key.

Time (`log_time`): the engine's timestamp when there is one, else the producer's
own stamp shifted by its service's UTC offset; the producer's stamp is kept in
`attributes.local_time`.
"""

from __future__ import annotations

import re

import polars as pl
from wstrace.conventions import DEFAULT_CONVERSATION_PATTERN

from wsanalyze.events import conform
from wsanalyze.logmap import EMPTY, LogMap
from wsanalyze.logparse import celery, channels_redis, daphne, redis
from wsanalyze.logparse.framing import records
from wsanalyze.logparse.log_time import event_time, line_stamp
from wsanalyze.logparse.redaction import redacted
from wsanalyze.logparse.rules import Rule
from wsanalyze.logparse.structured import structured_rows
from wsanalyze.logparse.structured_fields import LEVEL_RE

RULES: tuple[Rule, ...] = (
    *daphne.RULES,
    *celery.RULES,
    *redis.RULES,
    *channels_redis.RULES,
)

# Group names any rule may use; each becomes a column (null where a rule lacks it).
_GROUP_COLUMNS: dict[str, pl.DataType] = {
    "client": pl.String,
    "path": pl.String,
    "exc": pl.String,
    "task_id": pl.String,
    "task_name": pl.String,
    "group": pl.String,
    "over_capacity": pl.String,
    "members": pl.String,
    "runtime": pl.String,
    "limit": pl.String,
    "worker": pl.String,
    "url": pl.String,
    "msg": pl.String,
    "process": pl.String,
    "pid": pl.String,
    "instance": pl.String,
}
_FACT_COLUMNS: dict[str, pl.DataType] = {
    "accepted": pl.Boolean,
    "handshake_rejected": pl.Boolean,
    "closed_by": pl.String,
    "close_code": pl.Int32,
}


_ID_FIELDS = {
    "trace_id": r"\btrace_id=(?P<v>[0-9a-fA-F]{32})\b",
    "span_id": r"\bspan_id=(?P<v>[0-9a-fA-F]{16})\b",
    "conversation_id": r"\b(?:ws\.)?conversation_id=(?P<v>[^\s,;\"'\]\)]+)",
    "message_id": r"\b(?:ws\.)?message_id=(?P<v>[^\s,;\"'\]\)]+)",
    "connection_id": r"\b(?:ws\.)?connection_id=(?P<v>[^\s,;\"'\]\)]+)",
}
_NULL_IDS = ("", "-", "None", "null", "0" * 32, "0" * 16)

_EXC_LINE_RE = (
    r"(?m)^(?:[A-Za-z_]\w*\.)*(?P<exc>[A-Za-z_]\w*(?:Error|Exception|Exceeded|Exit|Interrupt|Full)"
    r"\b(?::.*)?)$"
)


def _rule_frame(cand: pl.DataFrame, rule: Rule) -> pl.DataFrame:
    """The records of `cand` (already known to hold the needle) that the rule's regex matches."""
    groups = set(re.compile(rule.pattern).groupindex)
    cand = cand.filter(pl.col("line").str.contains(rule.pattern))
    cand = cand.with_columns(pl.col("line").str.extract_groups(rule.pattern).alias("_m"))
    cols = [pl.col("_rid")]
    for name, dtype in _GROUP_COLUMNS.items():
        expr = pl.col("_m").struct.field(name) if name in groups else pl.lit(None, dtype=dtype)
        cols.append(expr.cast(dtype).alias(name))
    for name, dtype in _FACT_COLUMNS.items():
        cols.append(pl.lit(rule.facts.get(name), dtype=dtype).alias(name))
    cols += [
        pl.lit(rule.event).alias("event"),
        pl.lit(rule.producer).alias("name"),
        pl.lit(rule.hop, dtype=pl.String).alias("hop"),
        pl.lit(rule.status).alias("status"),
        pl.lit(rule.cause, dtype=pl.String).alias("cause"),
        pl.lit(rule.priority, dtype=pl.Int32).alias("_prio"),
    ]
    return cand.select(cols)


def _claimed(recs: pl.DataFrame) -> pl.DataFrame:
    """Run every rule: one Aho-Corasick pass finds each record's needles, then each rule's
    regex runs only on the records holding its needle."""
    needles = sorted({rule.needle for rule in RULES})
    hits = (
        recs.select("_rid", pl.col("line").str.extract_many(needles, overlapping=True).alias("_n"))
        .explode("_n")
        .drop_nulls("_n")
        .unique()
    )
    by_needle = hits.partition_by("_n", as_dict=True, include_key=False)
    frames = []
    lines = recs.select("_rid", "line")
    for rule in RULES:
        rids = by_needle.get((rule.needle,))
        if rids is None or rids.is_empty():
            continue
        cand = lines[rids["_rid"]]  # _rid is the row index
        frames.append(_rule_frame(cand, rule))
    if not frames:
        return _rule_frame(lines.clear(), RULES[0])
    claimed = pl.concat(frames, how="vertical")
    return claimed.sort("_rid", "_prio").unique("_rid", keep="first", maintain_order=True)


def _id(col: str) -> pl.Expr:
    value = pl.col("line").str.extract(_ID_FIELDS[col], 1)
    return pl.when(value.is_in(_NULL_IDS)).then(None).otherwise(value)


def parse_records(
    recs: pl.LazyFrame | pl.DataFrame,
    *,
    tz: str | None = None,
    conversation_pattern: str = DEFAULT_CONVERSATION_PATTERN,
    log_map: LogMap | None = None,
) -> pl.LazyFrame:
    """Records (see framing.records) → rows of the event table, source "log"."""
    recs = recs.lazy().collect().with_row_index("_rid")
    claimed = _claimed(recs)

    # Records no producer rule claimed: the app's own structured lines first ...
    unclaimed = recs.join(claimed.select("_rid"), on="_rid", how="anti")
    app = structured_rows(unclaimed, log_map or EMPTY)
    # ... then the others that carry ids or are errors.
    rest = unclaimed.select("_rid", "line").join(app.select("_rid"), on="_rid", how="anti")
    rest = rest.filter(pl.col("line").str.contains_any(["_id=", "ERROR", "CRITICAL", "FATAL"]))
    rest = rest.with_columns(
        pl.col("line").str.extract(LEVEL_RE, 1).alias("_level"),
        pl.coalesce(_id("trace_id"), _id("span_id"), _id("conversation_id")).alias("_anyid"),
    ).filter(
        pl.col("_anyid").is_not_null() | pl.col("_level").is_in(["ERROR", "CRITICAL", "FATAL"])
    )
    nulls = {**_GROUP_COLUMNS, **_FACT_COLUMNS}
    is_error = pl.col("_level").is_in(["ERROR", "CRITICAL", "FATAL"])
    rest = rest.select(
        "_rid",
        *[pl.lit(None, dtype=t).alias(n) for n, t in nulls.items()],
        pl.when(pl.col("_anyid").is_not_null())
        .then(pl.lit("app_log"))
        .otherwise(pl.lit("log_error"))
        .alias("event"),
        pl.lit("app").alias("name"),
        pl.lit(None, dtype=pl.String).alias("hop"),
        pl.when(is_error).then(pl.lit("error")).otherwise(pl.lit("unset")).alias("status"),
        pl.lit(None, dtype=pl.String).alias("cause"),
        pl.lit(99, dtype=pl.Int32).alias("_prio"),
    )
    events = pl.concat([claimed, rest], how="vertical")
    events = pl.concat([events, app], how="diagonal_relaxed").join(recs, on="_rid", how="inner")
    events = _banner_queues(recs, events)
    if "layer" not in events.columns:  # only the app's own lines name a layer
        events = events.with_columns(pl.lit(None, dtype=pl.String).alias("layer"))
    return _finish(events, tz=tz, conversation_pattern=conversation_pattern).lazy()


def _banner_queues(recs: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """The queues a Celery worker's banner lists → its next ``ready.`` row (`queues`).

    The banner has no time stamp (and may be folded into the record above it, such as
    Celery's root warning); the worker's ``ready.`` line that follows it does.
    """
    body = pl.coalesce("text", "line")
    banners = (
        recs.filter(body.str.contains(celery.BANNER_QUEUES, literal=True))
        .select(
            "_rid",
            pl.col("service"),
            body.str.split(celery.BANNER_QUEUES)
            .list.last()
            .str.split("[tasks]")
            .list.first()
            .str.extract_all(celery.BANNER_QUEUE)
            .list.eval(pl.element().str.extract(celery.BANNER_QUEUE, 1))
            .alias("_queues"),
        )
        .filter(pl.col("_queues").list.len() > 0)
    )
    if banners.is_empty():
        return events.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("queues"))
    ready = events.filter(pl.col("event") == "worker_ready").select("_rid", "service").sort("_rid")
    found = (
        ready.join_asof(
            banners.sort("_rid").rename({"_rid": "_banner"}),
            left_on="_rid",
            right_on="_banner",
            by="service",
            strategy="backward",
            check_sortedness=False,  # both sorted by _rid above; `by` defeats the check
        )
        .filter(pl.col("_queues").is_not_null())
        # one banner names the queues of the one start that follows it
        .sort("_rid")
        .unique("_banner", keep="first")
        .select("_rid", pl.col("_queues").alias("queues"))
    )
    return events.join(found, on="_rid", how="left")


def _subset(frame: pl.DataFrame, mask: pl.Expr, exprs: list[pl.Expr]) -> pl.DataFrame:
    """Compute `exprs` only on the rows where `mask` holds (null elsewhere)."""
    part = frame.filter(mask).select("_rid", *exprs)
    return frame.join(part, on="_rid", how="left")


def _finish(ev: pl.DataFrame, *, tz: str | None, conversation_pattern: str) -> pl.DataFrame:
    ev = ev.with_columns(
        pl.coalesce(line_stamp(), pl.col("_s_local")).alias("_local"),
        pl.coalesce(pl.col("_s_level"), pl.col("line").str.extract(LEVEL_RE, 1)).alias("_level"),
    )
    ev = _subset(
        ev,
        pl.col("line").str.contains("_id=", literal=True),
        [_id(c).alias(f"_{c}") for c in _ID_FIELDS],
    )
    ev = _subset(
        ev,
        (pl.col("status") == "error") & pl.col("text").is_not_null(),
        [pl.col("text").str.extract_all(_EXC_LINE_RE).list.last().alias("_exc_line")],
    )
    ev = event_time(ev, tz)
    from_path = pl.col("path").str.extract(conversation_pattern, 1)
    from_group = pl.col("group").str.extract(channels_redis.GROUP_CONVERSATION, 1)
    conversation = pl.coalesce(
        pl.col("_conversation_id"), pl.col("_s_conversation_id"), from_path, from_group
    )
    exact = (
        pl.col("_conversation_id").is_not_null()
        | pl.col("_trace_id").is_not_null()
        | pl.col("_s_exact").fill_null(False)
    )
    confidence = (
        pl.when(exact)
        .then(pl.lit("exact"))
        .when(from_path.is_not_null() | from_group.is_not_null())
        .then(pl.lit("path"))
        .otherwise(None)
    )
    exc_line = pl.col("_exc_line").str.replace(r"^(?:[A-Za-z_]\w*\.)+", "")
    exception = pl.coalesce(
        pl.col("_s_exception"),
        pl.when(pl.col("status") == "error").then(pl.coalesce(exc_line, pl.col("exc"))),
    )
    unregistered_id = pl.col("text").str.extract(celery.UNREGISTERED_TASK_ID, 1)  # null: 1 line
    attributes = pl.struct(
        pl.col("stream"),
        pl.col("_level").alias("level"),
        pl.col("client"),
        pl.col("path"),
        pl.col("_local").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f").alias("local_time"),
        pl.col("_offset_s").alias("utc_offset_s"),
        pl.col("runtime").cast(pl.Float64, strict=False).alias("runtime_s"),
        pl.col("limit").cast(pl.Float64, strict=False).alias("time_limit_s"),
        pl.col("worker"),
        pl.col("url"),
        pl.col("msg"),
        pl.col("process"),
    ).struct.json_encode()
    # the app's own key/values (structured lines), under "fields"
    attributes = (
        pl.when(pl.col("_s_attrs").is_not_null())
        .then(attributes.str.strip_suffix("}") + ',"fields":' + pl.col("_s_attrs") + "}")
        .otherwise(attributes)
    )
    out = ev.select(
        pl.col("ts"),
        pl.lit("log").alias("source"),
        pl.col("service"),
        conversation.alias("conversation_id"),
        pl.coalesce("_connection_id", "_s_connection_id").alias("connection_id"),
        pl.coalesce("_message_id", "_s_message_id").alias("message_id"),
        pl.col("hop"),
        pl.col("event"),
        pl.col("name"),
        pl.col("status"),
        redacted(pl.col("exc")).alias("status_message"),
        redacted(exception).alias("exception"),
        pl.col("cause"),
        pl.col("close_code"),
        pl.col("closed_by"),
        pl.col("accepted"),
        pl.col("handshake_rejected"),
        pl.col("over_capacity").cast(pl.Int64, strict=False),
        pl.col("members").cast(pl.Int64, strict=False),
        pl.col("group"),
        pl.col("queues"),
        redacted(pl.col("layer")).alias("layer"),
        pl.coalesce(pl.col("task_id"), pl.col("_s_task_id"), unregistered_id).alias("task_id"),
        pl.coalesce("task_name", "_s_task_name").alias("task_name"),
        pl.col("_s_queue").alias("queue"),
        pl.coalesce("_trace_id", "_s_trace_id").str.to_lowercase().alias("trace_id"),
        pl.coalesce("_span_id", "_s_span_id").str.to_lowercase().alias("span_id"),
        redacted(attributes).alias("attributes"),
        redacted(
            pl.coalesce(pl.col("_s_detail"), pl.col("text"), pl.col("line")).str.slice(0, 2000)
        ).alias("detail"),
        (pl.col("origin") + ":" + pl.col("lineno").cast(pl.String)).alias("origin"),
        confidence.alias("confidence"),
        pl.col("_rid"),
    )
    return conform(out.sort("ts", "_rid", nulls_last=True).lazy()).collect()


def parse_lines(
    lines: pl.DataFrame | pl.LazyFrame,
    *,
    tz: str | None = None,
    conversation_pattern: str = DEFAULT_CONVERSATION_PATTERN,
    log_map: LogMap | None = None,
) -> pl.LazyFrame:
    """A lines frame (see framing) → event-table rows (`log_map`: the app's keys/patterns)."""
    return parse_records(
        records(lines), tz=tz, conversation_pattern=conversation_pattern, log_map=log_map
    )
