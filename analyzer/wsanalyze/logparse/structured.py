"""Any app's own structured lines → event-table fields: logfmt, JSON objects, user patterns.

Three readers (``structured_pairs``) turn a record's first line into (key, value) pairs:

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
the value-shape rules that keep look-alikes out (``structured_fields``), are listed in
docs/logs.md.

A record becomes a row when it says something the analyzer can use: an id
(conversation, connection, message, task, trace), a close code, an error, a hop
the words map to, or a user pattern match. Its ``confidence`` is ``exact`` when
it carries an id. The parsing is vectorised with polars except JSON decoding
(objects of any shape) and the unescaping of the rare quoted value with a backslash.
"""

from __future__ import annotations

import polars as pl

from wsanalyze.causes import KNOWN_CAUSES
from wsanalyze.events import TS
from wsanalyze.logmap import EMPTY, LogMap
from wsanalyze.logparse.structured_fields import (
    BUILTIN_KEYS,
    ID_FIELDS,
    LEVEL_RE,
    attributes_json,
    exception_of,
    fields_of,
    kv_text,
    level_of,
    timestamps,
)
from wsanalyze.logparse.structured_pairs import (
    PAIRS_SCHEMA,
    bare_words,
    json_pairs,
    logfmt_pairs,
    pattern_pairs,
)

__all__ = ["REASON_CAUSES", "ROW_COLUMNS", "structured_rows"]

_ERROR_LEVELS = ("ERROR", "CRITICAL", "FATAL")
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


def structured_rows(recs: pl.DataFrame, log_map: LogMap = EMPTY) -> pl.DataFrame:
    """Records (`_rid`, `line`, `text`) no producer rule claimed → rows (ROW_COLUMNS)."""
    recs = recs.select("_rid", "line", "text")
    from_json = json_pairs(recs)
    json_rids = from_json.select("_rid").unique().to_series()
    from_logfmt = logfmt_pairs(recs, json_rids)
    words = bare_words(recs.filter(pl.col("_rid").is_in(from_logfmt["_rid"].implode())))
    pairs = pl.concat([from_json, from_logfmt])
    # the message a user pattern may also be tried on: the line's text field or bare words
    texts = (
        pairs.filter(pl.col("key").str.to_lowercase().is_in(list(BUILTIN_KEYS["text"])))
        .unique("_rid", keep="first", maintain_order=True)
        .select("_rid", pl.col("value").alias("_subject"))
    )
    subjects = pl.concat(
        [texts, words.rename({"_words": "_subject"}).join(texts, on="_rid", how="anti")]
    )
    from_patterns, assigned = (
        pattern_pairs(recs, subjects, log_map)
        if log_map.patterns
        else (pl.DataFrame(schema=PAIRS_SCHEMA), None)
    )
    pairs = pl.concat([from_patterns, pairs])
    if pairs.is_empty():
        return pl.DataFrame(schema=ROW_COLUMNS)
    wide = fields_of(pairs, log_map)
    frame = (
        recs.join(wide, on="_rid", how="inner")
        .join(words, on="_rid", how="left")
        .join(attributes_json(pairs), on="_rid", how="left")
        .join(kv_text(pairs), on="_rid", how="left")
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
        level_of(pl.col("f_level")),
        pl.col("line")
        .str.extract(LEVEL_RE, 1)
        .str.replace("^WARN$", "WARNING")
        .str.replace("^FATAL$", "CRITICAL"),
    )
    exception = exception_of(pl.col("f_exception"), pl.col("text"))
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
    utc, local = timestamps(pl.col("f_timestamp"))
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
