"""Structured log lines → long (record, key, value) pairs, by three readers.

* **JSON** (``json_pairs``): a line that is (or ends with) a JSON object; nested
  objects are flattened with dots, a pretty-printed object is read from the whole record.
* **logfmt** (``logfmt_pairs``): ``key=value`` pairs anywhere in the line, values bare
  or double-quoted with backslash escapes; ``bare_words`` are the words outside them.
* **patterns** (``pattern_pairs``): the user's regexes (``wsanalyze.logmap``), whose
  named groups are pairs too.

Every pair frame has the columns of ``PAIRS_SCHEMA``; ``_src`` says which reader
found the pair (``SRC_PATTERN`` < ``SRC_JSON`` < ``SRC_LOGFMT``: lower wins).
"""

from __future__ import annotations

import json
import re

import polars as pl

from wsanalyze.logmap import LogMap

__all__ = [
    "PAIRS_SCHEMA",
    "PAIR_RE",
    "SRC_JSON",
    "SRC_LOGFMT",
    "SRC_PATTERN",
    "bare_words",
    "json_pairs",
    "logfmt_pairs",
    "pattern_pairs",
    "utf8",
]

PAIR_RE = r"(?:^|\s)([A-Za-z_@][\w.@/\-]*)=(\"(?:[^\"\\]|\\.)*\"|[^\s\"]*)"
_LOGFMT_HINT = r"(?:^|\s)[A-Za-z_@][\w.@/\-]*="
# A stamp and a level opening the line are framing, not words of the message.
_LEAD_RE = (
    r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?(?:Z|[+-]\d\d:?\d\d)?[:\]]?\s*"
    r"(?:\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)(?:/[\w-]+)?\]?:?\s+)?"
)
PAIRS_SCHEMA = {"_rid": pl.UInt32, "key": pl.String, "value": pl.String, "_src": pl.Int32}
SRC_PATTERN, SRC_JSON, SRC_LOGFMT = 0, 1, 2


# Objects nested deeper than this are left out of a record's pairs: no log record nests
# its fields that far, and reading them would recurse once per level.
_MAX_DEPTH = 16


def _flatten(obj: object, prefix: str, out: list[tuple[str, str]]) -> None:
    """Nested JSON → dotted keys with string values (lists and odd values as JSON text)."""
    stack = [(obj, prefix, 0)]
    while stack:
        obj, prefix, depth = stack.pop()
        if isinstance(obj, dict):
            if depth < _MAX_DEPTH:  # reversed: the first key comes out first
                items = reversed(list(obj.items()))
                stack.extend((value, f"{prefix}{key}.", depth + 1) for key, value in items)
            continue
        key = prefix[:-1]
        if obj is None:
            continue
        if isinstance(obj, bool):
            out.append((key, "true" if obj else "false"))
        elif isinstance(obj, str):
            out.append((key, obj))
        elif isinstance(obj, int | float):
            out.append((key, repr(obj) if isinstance(obj, float) else str(obj)))
        else:
            out.append((key, _json_text(obj)))


def _json_text(value: object) -> str:
    """A list as JSON text; one nested too deep to write says so instead."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        return "[nested too deep]"


def utf8(text: str) -> str:
    """``text`` as polars can hold it: a lone surrogate (JSON's ``"\\ud800"``) becomes U+FFFD."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _int(text: str) -> int | str:
    """A JSON integer; past Python's 4300-digit limit, its digits (``int()`` would raise)."""
    try:
        return int(text)
    except ValueError:
        return text


def _json_object(line: str, text: str | None) -> dict | None:
    """The JSON object a line is or ends with (or the whole record, pretty-printed).

    An object nested too deep for the parser counts as none: the record stays a plain line.
    """
    start = line.find("{")
    for candidate in (line[start:], text[text.find("{") :] if text else None):
        if not candidate:
            continue
        try:
            doc = json.loads(candidate, parse_int=_int)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            return doc
    return None


def json_pairs(recs: pl.DataFrame) -> pl.DataFrame:
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
            keys.append(utf8(key))
            values.append(utf8(value))
    return pl.DataFrame(
        {"_rid": rids, "key": keys, "value": values, "_src": [SRC_JSON] * len(rids)},
        schema=PAIRS_SCHEMA,
    )


def _unescape(value: str) -> str:
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), value
    )


def logfmt_pairs(recs: pl.DataFrame, skip: pl.Series) -> pl.DataFrame:
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
        pl.lit(SRC_LOGFMT, dtype=pl.Int32).alias("_src"),
    )
    return pairs.select(list(PAIRS_SCHEMA)).cast(PAIRS_SCHEMA)


def bare_words(recs: pl.DataFrame) -> pl.DataFrame:
    """The words of each logfmt line outside its pairs (its message when it names none)."""
    words = (
        pl.col("line")
        .str.replace_all(PAIR_RE, " ")
        .str.replace(_LEAD_RE, "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    return recs.select("_rid", pl.when(words != "").then(words).alias("_words"))


def pattern_pairs(
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
                    pl.lit(SRC_PATTERN, dtype=pl.Int32).alias("_src"),
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
    pairs = pl.concat(frames) if frames else pl.DataFrame(schema=PAIRS_SCHEMA)
    assign_schema = {
        "_rid": pl.UInt32, "_pattern": pl.Int32, "_p_hop": pl.String, "_p_event": pl.String,
        "_p_status": pl.String, "_p_cause": pl.String,
    }  # fmt: skip
    assigned = (
        pl.concat(assigns).sort("_rid", "_pattern").unique("_rid", keep="first")
        if assigns
        else pl.DataFrame(schema=assign_schema)
    )
    return pairs.cast(PAIRS_SCHEMA), assigned.cast(assign_schema)
