"""Any app's own structured lines → event-table fields: logfmt, JSON objects, user patterns.

Three readers turn a record's first line into (key, value) pairs:

* **JSON**: a line that is (or ends with) a JSON object — structlog, python-json-logger,
  pino, zap. Nested objects are flattened with dots (``{"ctx": {"conv": "a"}}`` →
  ``ctx.conv``); a pretty-printed object spread over several lines is read from the
  whole record.
* **logfmt**: ``key=value`` pairs anywhere in the line, values bare or double-quoted
  with backslash escapes (``msg="ws \\"closed\\""``); the words outside any pair are
  the message (``ws disconnected conv=abc code=4001`` → message ``ws disconnected``).
* **patterns**: the user's regexes (``wsanalyze.logmap``), tried on the line and on
  the line's message; their named groups are fields and win over the line's pairs.

Keys are matched case-insensitively; a dotted key also counts by its last part
(``ws.conversation_id``). The keys understood out of the box (``BUILTIN_KEYS``), and
the value-shape rules that keep look-alikes out, are listed in docs/logs.md.

A record becomes a row when it says something the analyzer can use: an id
(conversation, connection, message, task, trace), a close code, an error, a hop
the words map to, or a user pattern match. Its ``confidence`` is ``exact`` when
it carries an id. The parsing is vectorised with polars except JSON decoding
(objects of any shape) and the unescaping of the rare quoted value with a backslash.
"""

from __future__ import annotations

import json
import re

import polars as pl

from wsanalyze.causes import KNOWN_CAUSES
from wsanalyze.events import TS
from wsanalyze.logmap import EMPTY, LogMap

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

PAIR_RE = r"(?:^|\s)([A-Za-z_@][\w.@/\-]*)=(\"(?:[^\"\\]|\\.)*\"|[^\s\"]*)"
_LOGFMT_HINT = r"(?:^|\s)[A-Za-z_@][\w.@/\-]*="
# A stamp and a level opening the line are framing, not words of the message.
_LEAD_RE = (
    r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?(?:Z|[+-]\d\d:?\d\d)?[:\]]?\s*"
    r"(?:\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?:/[\w-]+)?\]?:?\s+)?"
)
# A `msg` value is a message id, not the free text, when it has the shape of an id: one
# token of 4-128 letters, digits and -_.: holding at least one digit ("m-17", a uuid).
_ID_SHAPE = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{3,127}$"
# Python thread idents (python-json-logger's "thread") are long integers, not rooms.
_THREAD_IDENT = r"^\d{8,}$"
_NO_VALUE = ("", "-", "none", "null", "nil", "false", "0", "n/a")
LEVEL_RE = r"(?:^|[\s\[:|])(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?:[\s/\]:|]|$)"
_ERROR_LEVELS = ("ERROR", "CRITICAL", "FATAL")
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
# Words of the free text that say what happened (lowercase, matched as words).
_CLOSE_WORDS = r"\b(?:disconnect\w*|clos(?:e|ed|ing)|reject\w*|refused|kicked|dropped)\b"
_ENQUEUE_WORDS = r"\b(?:queued|enqueued?|enqueuing|delay|apply_async|send_task|dispatched)\b"
_ACCEPT_WORDS = r"\b(?:connected|accepted|opened)\b"
# a handshake refused before accept (no close code: Daphne answers 403)
_REJECT_WORDS = r"\b(?:reject\w*|denied|refused|forbidden)\b"
# the consumer says a frame of the message went out on its socket
_SEND_WORDS = r"\b(?:sent|delivered|forwarded|relayed|pushed)\b"
_JOIN_WORDS = r"\b(?:joined|join|joining|group_add|added|subscribed)\b"
_LEAVE_WORDS = r"\b(?:left|leave|leaving|group_discard|discarded|removed|unsubscribed)\b"
# What a close or reject line's reason says, first match wins (a cause code is itself).
REASON_CAUSES: tuple[tuple[str, str], ...] = (
    (r"origin", "origin_rejected"),
    (r"auth|token|unauthori[sz]ed|unauthenticated|login|credential|forbidden|permission",
     "auth_rejected"),
    (r"rate|throttl|too[ _-]?many|flood", "rate_limited"),
    (r"invalid|malformed|bad[ _-]?(?:frame|message)|schema|unparsable", "invalid_message"),
)  # fmt: skip
_TASK_WORDS = (  # (regex, event); the first that matches names the task event
    (r"\b(?:raised|failed|failure|crashed)\b", "task_failed"),
    (r"\bretry\w*\b", "task_retry"),
    (r"\b(?:succeeded|finished|completed|done|success)\b", "task_succeeded"),
    (r"\breceived\b", "task_received"),
    (r"\b(?:started|starting|running|begin)\b", "task_started"),
)
_STRUCTURED_COLUMNS: dict[str, pl.DataType] = {
    "_s_conversation_id": pl.String,
    "_s_connection_id": pl.String,
    "_s_message_id": pl.String,
    "_s_task_id": pl.String,
    "_s_task_name": pl.String,
    "_s_queue": pl.String,
    "_s_trace_id": pl.String,
    "_s_span_id": pl.String,
    "_s_exception": pl.String,
    "_s_level": pl.String,
    "_s_ts": TS,
    "_s_local": pl.Datetime("ns"),
    "_s_attrs": pl.String,
    "_s_detail": pl.String,
    "_s_exact": pl.Boolean,
}
ROW_COLUMNS: dict[str, pl.DataType] = {
    "_rid": pl.UInt32,
    "event": pl.String,
    "name": pl.String,
    "hop": pl.String,
    "status": pl.String,
    "cause": pl.String,
    "close_code": pl.Int32,
    "group": pl.String,
    "path": pl.String,
    "layer": pl.String,
    "_prio": pl.Int32,
    **_STRUCTURED_COLUMNS,
}


# --- pairs -------------------------------------------------------------------------------
_PAIRS_SCHEMA = {"_rid": pl.UInt32, "key": pl.String, "value": pl.String, "_src": pl.Int32}
_SRC_PATTERN, _SRC_JSON, _SRC_LOGFMT = 0, 1, 2


def _flatten(obj: object, prefix: str, out: list[tuple[str, str]]) -> None:
    """Nested JSON → dotted keys with string values (lists and odd values as JSON text)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}{key}.", out)
        return
    key = prefix[:-1]
    if obj is None:
        return
    if isinstance(obj, bool):
        out.append((key, "true" if obj else "false"))
    elif isinstance(obj, str):
        out.append((key, obj))
    elif isinstance(obj, int | float):
        out.append((key, repr(obj) if isinstance(obj, float) else str(obj)))
    else:
        out.append((key, json.dumps(obj, ensure_ascii=False, default=str)))


def _json_object(line: str, text: str | None) -> dict | None:
    """The JSON object a line is or ends with (or the whole record, pretty-printed)."""
    start = line.find("{")
    for candidate in (line[start:], text[text.find("{") :] if text else None):
        if not candidate:
            continue
        try:
            doc = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return None


def _json_pairs(recs: pl.DataFrame) -> pl.DataFrame:
    cand = recs.filter(
        pl.col("line").str.contains(r"\{\s*(?:\"|$)")
        & (pl.col("line").str.strip_chars_end().str.ends_with("}") | pl.col("text").is_not_null())
    )
    rids, keys, values = [], [], []
    for rid, line, text in cand.select("_rid", "line", "text").iter_rows():
        doc = _json_object(line, text)
        if doc is None:
            continue
        pairs: list[tuple[str, str]] = []
        _flatten(doc, "", pairs)
        for key, value in pairs:
            rids.append(rid)
            keys.append(key)
            values.append(value)
    return pl.DataFrame(
        {"_rid": rids, "key": keys, "value": values, "_src": [_SRC_JSON] * len(rids)},
        schema=_PAIRS_SCHEMA,
    )


def _unescape(value: str) -> str:
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), value
    )


def _logfmt_pairs(recs: pl.DataFrame, skip: pl.Series) -> pl.DataFrame:
    cand = recs.filter(
        ~pl.col("_rid").is_in(skip.implode()), pl.col("line").str.contains(_LOGFMT_HINT)
    )
    pairs = (
        cand.select("_rid", pl.col("line").str.extract_all(PAIR_RE).alias("_p"))
        .explode("_p")
        .drop_nulls("_p")
        .with_columns(pl.col("_p").str.extract_groups(PAIR_RE).alias("_g"))
        .select(
            "_rid",
            pl.col("_g").struct.field("1").alias("key"),
            pl.col("_g").struct.field("2").alias("value"),
        )
    )
    quoted = pl.col("value").str.starts_with('"') & pl.col("value").str.ends_with('"')
    pairs = pairs.with_columns(
        pl.when(quoted & (pl.col("value").str.len_chars() >= 2))
        .then(pl.col("value").str.slice(1, pl.col("value").str.len_chars() - 2))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    escaped = pl.col("value").str.contains("\\", literal=True)
    pairs = pairs.with_columns(
        pl.when(escaped)
        .then(pl.col("value").map_elements(_unescape, return_dtype=pl.String, skip_nulls=True))
        .otherwise(pl.col("value"))
        .alias("value"),
        pl.lit(_SRC_LOGFMT, dtype=pl.Int32).alias("_src"),
    )
    return pairs.select(list(_PAIRS_SCHEMA)).cast(_PAIRS_SCHEMA)


def _bare_words(recs: pl.DataFrame) -> pl.DataFrame:
    """The words of each logfmt line outside its pairs (its message when it names none)."""
    words = (
        pl.col("line")
        .str.replace_all(PAIR_RE, " ")
        .str.replace(_LEAD_RE, "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    return recs.select("_rid", pl.when(words != "").then(words).alias("_words"))


def _pattern_pairs(
    recs: pl.DataFrame, subjects: pl.DataFrame, log_map: LogMap
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pairs from the user's patterns, and per matched record what the first match assigns."""
    frames, assigns = [], []
    base = recs.select("_rid", "line").join(subjects, on="_rid", how="left")
    for index, pattern in enumerate(log_map.patterns):
        groups = list(re.compile(pattern.regex).groupindex)
        on_line = pl.col("line").str.contains(pattern.regex)
        on_text = pl.col("_subject").str.contains(pattern.regex).fill_null(False)
        hit = base.filter(on_line | on_text).with_columns(
            pl.when(on_line)
            .then(pl.col("line"))
            .otherwise(pl.col("_subject"))
            .str.extract_groups(pattern.regex)
            .alias("_g")
        )
        if hit.is_empty():
            continue
        for group in groups:
            frames.append(
                hit.select(
                    "_rid",
                    pl.lit(group).alias("key"),
                    pl.col("_g").struct.field(group).alias("value"),
                    pl.lit(_SRC_PATTERN, dtype=pl.Int32).alias("_src"),
                ).drop_nulls("value")
            )
        assigns.append(
            hit.select(
                "_rid",
                pl.lit(index, dtype=pl.Int32).alias("_pattern"),
                pl.lit(pattern.hop, dtype=pl.String).alias("_p_hop"),
                pl.lit(pattern.event, dtype=pl.String).alias("_p_event"),
                pl.lit(pattern.status, dtype=pl.String).alias("_p_status"),
                pl.lit(pattern.cause, dtype=pl.String).alias("_p_cause"),
            )
        )
    pairs = pl.concat(frames) if frames else pl.DataFrame(schema=_PAIRS_SCHEMA)
    assign_schema = {
        "_rid": pl.UInt32, "_pattern": pl.Int32, "_p_hop": pl.String, "_p_event": pl.String,
        "_p_status": pl.String, "_p_cause": pl.String,
    }  # fmt: skip
    assigned = (
        pl.concat(assigns).sort("_rid", "_pattern").unique("_rid", keep="first")
        if assigns
        else pl.DataFrame(schema=assign_schema)
    )
    return pairs.cast(_PAIRS_SCHEMA), assigned.cast(assign_schema)


# --- keys → fields ---------------------------------------------------------------------
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


def _fields(pairs: pl.DataFrame, log_map: LogMap) -> pl.DataFrame:
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
        (pl.col("_key") != "code") | (pl.col("_src") == _SRC_PATTERN),
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


def _attrs(pairs: pl.DataFrame) -> pl.DataFrame:
    """The raw key/values of each record as one JSON object (first value of a repeated key)."""
    member = _json_string(pl.col("key")) + ":" + _json_string(pl.col("value"))
    return (
        pairs.sort("_rid", pl.col("_src") == _SRC_PATTERN, maintain_order=True)
        .unique(["_rid", "key"], keep="first", maintain_order=True)
        .group_by("_rid", maintain_order=True)
        .agg(member.str.join(",").alias("_s_attrs"))
        .with_columns((pl.lit("{") + pl.col("_s_attrs") + "}").alias("_s_attrs"))
    )


def _timestamps(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
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


def _level(col: pl.Expr) -> pl.Expr:
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


def _exception(exc: pl.Expr, record_text: pl.Expr) -> pl.Expr:
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


def _words_match(lowered: pl.Expr, regex: str) -> pl.Expr:
    return lowered.str.contains(regex).fill_null(False)


def _task_event(text: pl.Expr, is_error: pl.Expr) -> pl.Expr:
    expr = pl.when(is_error).then(pl.lit("task_failed"))
    for regex, event in _TASK_WORDS:
        expr = expr.when(_words_match(text, regex)).then(pl.lit(event))
    return expr.otherwise(None)


def _detail(has_json: pl.Expr) -> pl.Expr:
    """A readable line: a JSON record as `message key=value …` (its traceback below);
    any other record as written."""
    return (
        pl.when(has_json)
        .then(
            pl.concat_str(
                [pl.col("text_f").fill_null(""), pl.col("_kv").fill_null("")], separator=" "
            ).str.strip_chars()
            + pl.when(pl.col("f_exception").str.contains("\n", literal=True))
            .then(pl.lit("\n") + pl.col("f_exception"))
            .otherwise(pl.lit(""))
            + pl.when(pl.col("text").is_not_null())
            .then(pl.lit("\n") + pl.col("text").str.split_exact("\n", 1).struct.field("field_1"))
            .otherwise(pl.lit(""))
        )
        .otherwise(pl.coalesce(pl.col("text"), pl.col("line")))
    )


def _kv_text(pairs: pl.DataFrame) -> pl.DataFrame:
    """`key=value …` of a JSON record's pairs, leaving out its message, level and time."""
    skip = [k for f in ("text", "level", "timestamp") for k in BUILTIN_KEYS[f]]
    quoted = (
        pl.when(pl.col("value").str.contains(r"[\s\"=]") | (pl.col("value") == ""))
        .then(pl.lit('"') + pl.col("value").str.replace_all('"', '\\"', literal=True) + '"')
        .otherwise(pl.col("value"))
    )
    return (
        pairs.filter(
            pl.col("_src") == _SRC_JSON,
            ~pl.col("key").str.to_lowercase().is_in(skip),
            # a traceback is shown below the line (see _detail), not escaped into it
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


def structured_rows(recs: pl.DataFrame, log_map: LogMap = EMPTY) -> pl.DataFrame:
    """Records (`_rid`, `line`, `text`) no producer rule claimed → rows (ROW_COLUMNS)."""
    recs = recs.select("_rid", "line", "text")
    json_pairs = _json_pairs(recs)
    json_rids = json_pairs.select("_rid").unique().to_series()
    logfmt_pairs = _logfmt_pairs(recs, json_rids)
    words = _bare_words(recs.filter(pl.col("_rid").is_in(logfmt_pairs["_rid"].implode())))
    pairs = pl.concat([json_pairs, logfmt_pairs])
    # the message a user pattern may also be tried on: the line's text field or bare words
    texts = (
        pairs.filter(pl.col("key").str.to_lowercase().is_in(list(BUILTIN_KEYS["text"])))
        .unique("_rid", keep="first", maintain_order=True)
        .select("_rid", pl.col("value").alias("_subject"))
    )
    subjects = pl.concat(
        [texts, words.rename({"_words": "_subject"}).join(texts, on="_rid", how="anti")]
    )
    pattern_pairs, assigned = (
        _pattern_pairs(recs, subjects, log_map)
        if log_map.patterns
        else (pl.DataFrame(schema=_PAIRS_SCHEMA), None)
    )
    pairs = pl.concat([pattern_pairs, pairs])
    if pairs.is_empty():
        return pl.DataFrame(schema=ROW_COLUMNS)
    wide = _fields(pairs, log_map)
    frame = (
        recs.join(wide, on="_rid", how="inner")
        .join(words, on="_rid", how="left")
        .join(_attrs(pairs), on="_rid", how="left")
        .join(_kv_text(pairs), on="_rid", how="left")
        .with_columns(pl.col("_rid").is_in(json_rids.implode()).alias("_json"))
    )
    if assigned is not None:
        frame = frame.join(assigned, on="_rid", how="left")
    else:
        frame = frame.with_columns(
            pl.lit(None, dtype=pl.Int32).alias("_pattern"),
            *[
                pl.lit(None, dtype=pl.String).alias(c)
                for c in ("_p_hop", "_p_event", "_p_status", "_p_cause")
            ],
        )
    return _rows(frame)


def _rows(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.with_columns(pl.coalesce("f_text", "_words").alias("text_f"))
    # the words that say what happened, lowercased once for every test below
    frame = frame.with_columns(pl.coalesce("text_f", "line").str.to_lowercase().alias("_lc"))
    text = pl.col("_lc")
    level = pl.coalesce(
        _level(pl.col("f_level")),
        pl.col("line")
        .str.extract(LEVEL_RE, 1)
        .str.replace("^WARN$", "WARNING")
        .str.replace("^FATAL$", "CRITICAL"),
    )
    exception = _exception(pl.col("f_exception"), pl.col("text"))
    is_error = level.is_in(_ERROR_LEVELS).fill_null(False) | exception.is_not_null()
    close_code = pl.col("f_close_code").cast(pl.Int32, strict=False)
    has_task = pl.col("f_task").is_not_null()
    explicit_close = pl.col("_close_key").fill_null(False)
    # a socket that went away says so even without a code (a client that simply left)
    left = (pl.col("f_conversation").is_not_null() | pl.col("f_connection").is_not_null()) & (
        _words_match(text, r"\bdisconnect(?:ed|ing)?\b")
    )
    closes = (close_code.is_not_null() & (_words_match(text, _CLOSE_WORDS) | explicit_close)) | left
    enqueues = has_task & _words_match(text, _ENQUEUE_WORDS)
    task_event = pl.when(has_task).then(_task_event(text, is_error))
    accepts = (
        pl.col("f_conversation").is_not_null()
        & close_code.is_null()
        & _words_match(text, _ACCEPT_WORDS)
    )
    receives = pl.col("f_message").is_not_null() & ~has_task & _words_match(text, r"\breceived\b")
    sends = pl.col("f_message").is_not_null() & ~has_task & _words_match(text, _SEND_WORDS)
    socket = (
        pl.col("f_conversation").is_not_null()
        | pl.col("f_connection").is_not_null()
        | pl.col("f_path").is_not_null()
    )
    rejects = socket & close_code.is_null() & ~has_task & _words_match(text, _REJECT_WORDS)
    in_group = pl.col("f_group").is_not_null() & ~has_task
    group_event = (
        pl.when(in_group & _words_match(text, _LEAVE_WORDS)).then(pl.lit("group_discard"))
        .when(in_group & _words_match(text, _JOIN_WORDS)).then(pl.lit("group_add"))
    )  # fmt: skip
    hop = (
        pl.when(closes).then(pl.lit("disconnect"))
        .when(enqueues).then(pl.lit("enqueue"))
        .when(task_event.is_not_null()).then(pl.lit("task"))
        .when(rejects).then(pl.lit("connect"))
        .when(accepts).then(pl.lit("accept"))
        .when(receives).then(pl.lit("receive"))
        .when(sends).then(pl.lit("send"))
    )  # fmt: skip
    has_id = pl.any_horizontal(pl.col(f"f_{f}").is_not_null() for f in ID_FIELDS)
    event = (
        pl.when(closes).then(pl.lit("disconnect"))
        .when(enqueues).then(pl.lit("enqueue"))
        .when(task_event.is_not_null()).then(task_event)
        .when(rejects).then(pl.lit("reject"))
        .when(accepts).then(pl.lit("accept"))
        .when(receives).then(pl.lit("receive"))
        .when(sends).then(pl.lit("send"))
        .when(group_event.is_not_null()).then(group_event)
        .when(has_id).then(pl.lit("app_log"))
        .otherwise(pl.lit("log_error"))
    )  # fmt: skip
    reason = pl.col("f_reason").str.to_lowercase()
    reason_cause = pl.when(reason.is_in(list(KNOWN_CAUSES))).then(reason)
    for regex, cause in REASON_CAUSES:
        reason_cause = reason_cause.when(reason.str.contains(regex)).then(pl.lit(cause))
    reason_cause = pl.when(closes | rejects).then(reason_cause.otherwise(None))
    status = (
        pl.when(is_error)
        .then(pl.lit("error"))
        .when(task_event == "task_succeeded")
        .then(pl.lit("ok"))
        .otherwise(pl.lit("unset"))
    )
    utc, local = _timestamps(pl.col("f_timestamp"))
    out = frame.with_columns(
        pl.coalesce(pl.col("_p_hop"), hop).alias("hop"),
        pl.coalesce(pl.col("_p_event"), event).alias("event"),
        pl.coalesce(pl.col("_p_status"), status).alias("status"),
        pl.coalesce(pl.col("_p_cause"), reason_cause).alias("cause"),
        close_code.alias("close_code"),
        level.alias("_s_level"),
        exception.alias("_s_exception"),
        utc.alias("_s_ts"),
        local.alias("_s_local"),
        has_id.alias("_s_exact"),
    )
    keep = (
        pl.col("_s_exact")
        | pl.col("f_close_code").is_not_null()
        | (pl.col("status") == "error")
        | pl.col("hop").is_not_null()
        | pl.col("_pattern").is_not_null()
        | (group_event.is_not_null() & pl.col("f_group").is_not_null())
        # a process saying which channel layer it loaded (web and worker must agree)
        | pl.col("f_layer").is_not_null()
    )
    out = out.filter(keep)
    return out.select(
        "_rid",
        "event",
        pl.lit("app").alias("name"),
        "hop",
        "status",
        "cause",
        "close_code",
        pl.col("f_group").alias("group"),
        pl.col("f_path").alias("path"),
        pl.col("f_layer").alias("layer"),
        pl.lit(60, dtype=pl.Int32).alias("_prio"),
        pl.col("f_conversation").alias("_s_conversation_id"),
        pl.col("f_connection").alias("_s_connection_id"),
        pl.col("f_message").alias("_s_message_id"),
        pl.col("f_task").alias("_s_task_id"),
        pl.col("f_task_name").alias("_s_task_name"),
        pl.col("f_queue").alias("_s_queue"),
        pl.col("f_trace").str.to_lowercase().alias("_s_trace_id"),
        pl.col("f_span").str.to_lowercase().alias("_s_span_id"),
        "_s_exception",
        "_s_level",
        "_s_ts",
        "_s_local",
        "_s_attrs",
        _detail(pl.col("_json")).str.slice(0, 2000).alias("_s_detail"),
        "_s_exact",
    ).cast(ROW_COLUMNS)
