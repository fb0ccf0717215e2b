"""Pairs → fields: which key means which field, which values count, and what they mean.

``key_table`` lists every key understood (the user's first, then ``BUILTIN_KEYS``);
``fields_of`` turns a record's pairs into one ``f_<field>`` column per field (the best
key's value, look-alike values left out, as docs/logs.md lists); ``attributes_json``
and ``kv_text`` keep the raw pairs for the row's detail; ``timestamps``, ``level_of``
and ``exception_of`` read what a time, level or exception value says.
"""

from __future__ import annotations

import polars as pl

from wsanalyze.events import TS
from wsanalyze.logmap import EMPTY, LogMap
from wsanalyze.logparse.structured_pairs import SRC_JSON, SRC_PATTERN

__all__ = [
    "BUILTIN_KEYS",
    "ID_FIELDS",
    "LEVEL_RE",
    "attributes_json",
    "exception_of",
    "fields_of",
    "key_table",
    "kv_text",
    "level_of",
    "timestamps",
]

# Field -> keys understood out of the box, best first: when a line has several keys for
# one field the earlier-listed key wins (a user's own keys come before all of these).
BUILTIN_KEYS: dict[str, tuple[str, ...]] = {
    "conversation": (
        "conversation_id", "conversation", "conv", "room_name", "room", "chat_id", "thread",
    ),
    "connection": ("connection_id", "conn", "conn_id"),
    "message": ("message_id", "msg_id"),
    "task": ("task_id", "task"),
    "task_name": ("task_name",),
    "trace": ("trace_id", "traceid", "oteltraceid"),
    "span": ("span_id", "spanid", "otelspanid"),
    "close_code": ("close_code", "code"),
    "reason": ("reason", "close_reason", "reject_reason"),
    "group": ("group", "group_name", "channel_group"),
    "path": ("path", "url_path", "request_path"),
    "layer": ("channel_layer", "layer"),
    "queue": ("queue", "routing_key"),
    "user": ("user_id", "user"),
    "level": ("level", "levelname", "severity", "log.level"),
    "exception": ("exc_info", "exception", "exc", "error", "stack_trace"),
    "timestamp": ("timestamp", "@timestamp", "ts", "time", "asctime"),
    "text": ("event", "message", "msg"),
}  # fmt: skip
ID_FIELDS = ("conversation", "connection", "message", "task", "trace")

# A `msg` value is a message id, not the free text, when it has the shape of an id: one
# token of 4-128 letters, digits and -_.: holding at least one digit ("m-17", a uuid).
_ID_SHAPE = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{3,127}$"
# Python thread idents (python-json-logger's "thread") are long integers, not rooms.
_THREAD_IDENT = r"^\d{8,}$"
_NO_VALUE = ("", "-", "none", "null", "nil", "false", "0", "n/a")
LEVEL_RE = r"(?:^|[\s\[:|])(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?:[\s/\]:|]|$)"
_LEVELS = {
    "warn": "WARNING", "err": "ERROR", "fatal": "CRITICAL", "crit": "CRITICAL",
    "critical": "CRITICAL", "error": "ERROR", "warning": "WARNING", "info": "INFO",
    "debug": "DEBUG", "trace": "DEBUG", "notice": "INFO", "emergency": "CRITICAL",
    "alert": "CRITICAL",
}  # fmt: skip
_EXC_LINE_RE = (
    r"(?m)^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Exceeded|Exit|Interrupt|Full|Lost)"
    r"\b(?::.*)?)$"
)


def key_table(log_map: LogMap = EMPTY) -> pl.DataFrame:
    """Every key understood (lowercase) with its field and rank (lower wins within a field)."""
    rows: dict[str, tuple[str, int]] = {}
    for field, keys in log_map.keys.items():
        for rank, key in enumerate(keys):
            rows.setdefault(key.lower(), (field, rank))
    for field, keys in BUILTIN_KEYS.items():
        for rank, key in enumerate(keys, start=100):
            rows.setdefault(key, (field, rank))
    return pl.DataFrame(
        {
            "_k": list(rows),
            "field": [f for f, _ in rows.values()],
            "_rank": [r for _, r in rows.values()],
        },
        schema={"_k": pl.String, "field": pl.String, "_rank": pl.Int32},
    )


def fields_of(pairs: pl.DataFrame, log_map: LogMap) -> pl.DataFrame:
    """Long pairs → one row per record, one column per field (best key's value)."""
    table = key_table(log_map)
    to_field = dict(zip(table["_k"], table["field"], strict=True))
    to_rank = dict(zip(table["_k"], table["_rank"], strict=True))
    lowered = pl.col("_key")
    # a dotted key that is not known whole counts by its last part (`ctx.conversation_id`)
    last = lowered.str.extract(r"([^.]+)$", 1)
    lookup = (
        pl.when(lowered.is_in(list(to_field)) | ~lowered.str.contains(".", literal=True))
        .then(lowered)
        .otherwise(last)
    )
    pairs = (
        pairs.with_row_index("_pos")
        .with_columns(pl.col("key").str.to_lowercase().alias("_key"))
        .with_columns(lookup.alias("_lookup"))
        .with_columns(
            pl.col("_lookup")
            .replace_strict(to_field, default=None, return_dtype=pl.String)
            .alias("field"),
            pl.col("_lookup")
            .replace_strict(to_rank, default=None, return_dtype=pl.Int32)
            .alias("_rank"),
        )
        .select("_rid", "_pos", "_src", "value", "_key", "field", "_rank")
    )
    value = pl.col("value").str.strip_chars()
    id_like = [
        "conversation", "connection", "message", "task", "trace", "span", "user", "queue",
        "group", "path", "reason", "layer",
    ]  # fmt: skip
    # Value shapes that disqualify a key from its field (documented in docs/logs.md).
    usable = (
        pl.when(pl.col("field") == "close_code")
        .then(value.str.contains(r"^[1-4]\d{3}$"))
        .when(pl.col("field").is_in([*id_like, "exception"]))
        .then(~value.str.to_lowercase().is_in(_NO_VALUE))
        .otherwise(value != "")
    )
    # `task=run_agent`: a name, not an id (ids hold digits: uuids, counters)
    task_is_name = (pl.col("_key") == "task") & ~value.str.contains(r"\d")
    msg_is_id = (
        (pl.col("_key") == "msg") & value.str.contains(_ID_SHAPE) & value.str.contains(r"\d")
    )
    thread_ident = (pl.col("_key") == "thread") & value.str.contains(_THREAD_IDENT)
    pairs = pairs.with_columns(
        pl.when(msg_is_id)
        .then(pl.lit("message"))
        .when(task_is_name)
        .then(pl.lit("task_name"))
        .otherwise(pl.col("field"))
        .alias("field"),
        value.alias("value"),
    ).filter(pl.col("field").is_not_null(), ~thread_ident, usable)
    best = pairs.sort("_rid", "_src", "_rank", "_pos").unique(
        ["_rid", "field"], keep="first", maintain_order=True
    )
    # A close code under a name that says so (`close_code`, a pattern group), not a bare
    # `code`, is a close whatever the words around it say.
    explicit = best.filter(
        pl.col("field") == "close_code",
        (pl.col("_key") != "code") | (pl.col("_src") == SRC_PATTERN),
    ).select("_rid", pl.lit(True).alias("_close_key"))
    # columns f_<field>: the records' own columns (`text`, `line`) keep their names
    best = best.with_columns((pl.lit("f_") + pl.col("field")).alias("field"))
    wide = best.pivot(on="field", index="_rid", values="value", aggregate_function="first")
    for field in BUILTIN_KEYS:
        if f"f_{field}" not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.String).alias(f"f_{field}"))
    return wide.join(explicit, on="_rid", how="left")


def _json_string(col: pl.Expr) -> pl.Expr:
    """A string column as JSON string literals (escaped by polars' own JSON writer)."""
    return pl.struct(col.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")


def attributes_json(pairs: pl.DataFrame) -> pl.DataFrame:
    """The raw key/values of each record as one JSON object (first value of a repeated key)."""
    member = _json_string(pl.col("key")) + ":" + _json_string(pl.col("value"))
    return (
        pairs.sort("_rid", pl.col("_src") == SRC_PATTERN, maintain_order=True)
        .unique(["_rid", "key"], keep="first", maintain_order=True)
        .group_by("_rid", maintain_order=True)
        .agg(member.str.join(",").alias("_s_attrs"))
        .with_columns((pl.lit("{") + pl.col("_s_attrs") + "}").alias("_s_attrs"))
    )


def timestamps(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(UTC time when the value names its zone or is epoch seconds/ms, naive local time)."""
    iso = (
        col.str.strip_chars()
        .str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T")
        .str.replace(r"(\d\d:\d\d:\d\d),(\d+)", "${1}.${2}")
        .str.replace(r"Z$", "+00:00")
        .str.replace(r" ?([+-]\d\d):?(\d\d)$", "${1}${2}")
    )
    zoned = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_unit="ns", strict=False)
    epoch = col.cast(pl.Float64, strict=False)
    seconds = pl.when(epoch > 1e11).then(epoch / 1000).otherwise(epoch)
    from_epoch = (
        pl.when(seconds.is_between(1e9, 1e10))
        .then(pl.from_epoch((seconds * 1e6).cast(pl.Int64), time_unit="us"))
        .cast(pl.Datetime("ns"))
        .dt.replace_time_zone("UTC")
    )
    utc = pl.coalesce(zoned.dt.convert_time_zone("UTC"), from_epoch).cast(TS)
    local = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ns", strict=False)
    return utc, local


def level_of(col: pl.Expr) -> pl.Expr:
    lowered = col.str.strip_chars().str.to_lowercase()
    numeric = col.cast(pl.Int64, strict=False)  # pino/bunyan: 10..60, Python: 10..50
    by_number = (
        pl.when(numeric >= 60)
        .then(pl.lit("CRITICAL"))
        .when(numeric >= 50)
        .then(pl.lit("ERROR"))
        .when(numeric >= 40)
        .then(pl.lit("WARNING"))
        .when(numeric >= 20)
        .then(pl.lit("INFO"))
        .when(numeric >= 0)
        .then(pl.lit("DEBUG"))
    )
    return pl.coalesce(lowered.replace_strict(_LEVELS, default=None), by_number)


def exception_of(exc: pl.Expr, record_text: pl.Expr) -> pl.Expr:
    """ "Type: message" from an exception value (a traceback's last exception line, a bare
    message) or, for exc_info=true, from the traceback lines of the record."""
    truthy = exc.str.to_lowercase().is_in(["true", "1", "yes"])
    from_value = pl.coalesce(
        exc.str.extract_all(_EXC_LINE_RE).list.last(), exc.str.split("\n").list.last()
    )
    from_value = from_value.str.replace(r"^(?:[A-Za-z_]\w*\.)+", "").str.slice(0, 500)
    from_text = (
        record_text.str.extract_all(_EXC_LINE_RE)
        .list.last()
        .str.replace(r"^(?:[A-Za-z_]\w*\.)+", "")
    )
    return pl.when(truthy).then(from_text).otherwise(from_value)


def kv_text(pairs: pl.DataFrame) -> pl.DataFrame:
    """`key=value …` of a JSON record's pairs, leaving out its message, level and time."""
    skip = [k for f in ("text", "level", "timestamp") for k in BUILTIN_KEYS[f]]
    quoted = (
        pl.when(pl.col("value").str.contains(r"[\s\"=]") | (pl.col("value") == ""))
        .then(pl.lit('"') + pl.col("value").str.replace_all('"', '\\"', literal=True) + '"')
        .otherwise(pl.col("value"))
    )
    return (
        pairs.filter(
            pl.col("_src") == SRC_JSON,
            ~pl.col("key").str.to_lowercase().is_in(skip),
            # a traceback is shown below the line (see structured._detail), not escaped into it
            ~(
                pl.col("key").str.to_lowercase().is_in(list(BUILTIN_KEYS["exception"]))
                & pl.col("value").str.contains("\n", literal=True)
            ),
        )
        .with_columns(
            (pl.col("key") + "=" + quoted.str.replace_all("\n", "\\n", literal=True)).alias("_kv")
        )
        .group_by("_rid", maintain_order=True)
        .agg(pl.col("_kv").str.join(" "))
    )
