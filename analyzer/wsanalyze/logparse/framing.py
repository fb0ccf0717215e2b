"""From raw log text to a frame of lines, then of records (multi-line events kept whole).

The lines frame has one row per physical line:

    service  str        compose service / file stem / container name
    stream   str        "stdout" | "stderr" | null (unknown)
    engine_ts datetime  the time the Docker engine stamped on the line (null for plain logs)
    line     str        the text, without the engine prefix
    origin   str        the file, or "container:stream"
    lineno   int        line number within the origin (origin:lineno names the line)
    part     str        which physical sequence the line belongs to (file, or container+stream);
                        continuation lines only ever join records of the same part

Formats recognised per file (from its first lines): `docker compose logs [-t] --no-color`
output, `docker logs -t` output, json-file driver logs (partial 16 KB chunks joined back
into one line), and plain process logs (time taken from the line itself later).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from wsanalyze.events import TS
from wsanalyze.logparse.structured_pairs import utf8

LINES_SCHEMA: dict[str, pl.DataType] = {
    "service": pl.String,
    "stream": pl.String,
    "engine_ts": TS,
    "line": pl.String,
    "origin": pl.String,
    "lineno": pl.Int64,
    "part": pl.String,
}

ENGINE_TS_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
COMPOSE_RE = rf"^(?P<name>[^\s|]+)\s*\| (?:(?P<ts>{ENGINE_TS_RE}) ?)?(?P<line>.*)$"
DOCKER_T_RE = rf"^(?P<ts>{ENGINE_TS_RE}) (?P<line>.*)$"

# A line that starts a new record: it opens with a time stamp one of the known
# producers writes (Python logging asctime, Celery, Daphne access, Redis, ISO), or it is
# an app's structured line (a JSON object, logfmt's `key=`, a level word) — without the
# last three, an app's unstamped lines would be glued to the stamped record above them.
HEADER_RE = (
    r"^(?:\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d"  # logging asctime, Celery, ISO
    r"|\S+ \S+ \S+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\]"  # Daphne access
    r"|\d+:[XCSM] \d\d \w{3} \d{4} "  # Redis
    r"|\d+:signal-handler"  # Redis
    r"|\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]"  # Django runserver
    r"|\{\s*\"|\{\s*$"  # a JSON object (one line, or the first of a pretty-printed one)
    r"|[A-Za-z_@][\w.@-]*=\S"  # logfmt
    r"|(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)[\s:]"  # `%(levelname)s ...` formats
    r"|worker: (?:Warm|Cold) shutdown"  # Celery prints it unstamped: its own record
    r")"
)
# A line that continues the record above it: traceback frames and exception lines, and
# the closing brace of a pretty-printed JSON object.
CONTINUATION_RE = (
    r"^(?:\s|$|Traceback \(most recent call last\)|During handling of the above"
    r"|The above exception was|\"\"\"$|[}\]],?\s*$"
    r"|[A-Za-z_][\w.]*(?:Error|Exception|Exceeded|Exit|Interrupt|Warning|Full)\b)"
)


def parse_engine_ts(col: pl.Expr) -> pl.Expr:
    """RFC 3339 in UTC with up to 9 fractional digits (what dockerd writes; Go trims trailing
    zeros) into UTC datetimes. Fixed-width slicing: several times faster than strptime."""
    base = col.str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="ns", strict=False)
    rest = col.str.slice(19)
    ok = rest.str.ends_with("Z") & (rest.str.starts_with(".") | (rest == "Z"))
    digits = rest.str.slice(1).str.strip_suffix("Z")
    frac = digits.str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64, strict=False)
    ts = base + pl.duration(nanoseconds=frac.fill_null(0), time_unit="ns")
    valid = ok & (frac.is_not_null() | (digits == ""))
    return pl.when(valid).then(ts).otherwise(None).dt.replace_time_zone("UTC")


def parse_any_ts(col: pl.Expr) -> pl.Expr:
    """RFC 3339 with an explicit offset instead of `Z`."""
    return col.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%z", time_unit="ns", strict=False
    ).dt.convert_time_zone("UTC")


def _engine_ts(frame: pl.DataFrame, col: str) -> pl.Series:
    """Parse a column of engine stamps: the fast `Z` path, the offset form only if needed."""
    fast = frame.select(parse_engine_ts(pl.col(col))).to_series()
    missing = fast.is_null() & frame[col].is_not_null()
    if missing.any():
        slow = frame.select(parse_any_ts(pl.col(col))).to_series()
        fast = fast.zip_with(~missing, slow)
    return fast


def service_from_container(name: pl.Expr) -> pl.Expr:
    """`web-1` (compose v2) or `proj_web_1` (v1) → `web`-ish: drop the replica number."""
    return name.str.replace(r"[-_]\d+$", "")


def _text_lines(path: Path) -> pl.Series:
    """The file's lines (no newline, no trailing CR): read natively by polars; files with
    bytes that are not UTF-8 are decoded with replacement characters instead."""
    try:
        lines = pl.read_lines(path).to_series()
    except pl.exceptions.ComputeError:
        data = path.read_bytes().decode("utf-8", errors="replace")
        data = data.removesuffix("\n")
        lines = pl.Series("line", data.split("\n") if data else [], dtype=pl.String)
    if lines.str.ends_with("\r").any():
        lines = lines.str.strip_suffix("\r")
    return lines.alias("line")


def sniff(path: Path) -> str:
    """'json' | 'compose' | 'docker' | 'plain' from the first non-empty lines."""
    import re

    with path.open("rb") as fh:
        head = [ln.decode("utf-8", "replace").rstrip("\r\n") for ln in fh.readlines(64 * 1024)]
    head = [ln for ln in head if ln.strip()][:20]
    if not head:
        return "plain"
    # json-file lines carry the engine's three keys; an app's JSON log lines do not. Half
    # of them is enough, and a file the engine named (`<id>-json.log`) needs none: damaged
    # entries do not make it plain text (read_json_file names the lines it skips).
    engine_keys = ('"log"', '"stream"', '"time"')
    entries = sum(ln.startswith("{") and all(k in ln for k in engine_keys) for ln in head)
    if (entries and 2 * entries >= len(head)) or (
        path.name.endswith("-json.log") and any(ln.startswith("{") for ln in head)
    ):
        return "json"
    votes = {"compose": 0, "docker": 0}
    for ln in head:
        if re.match(DOCKER_T_RE, ln):
            votes["docker"] += 1
        elif re.match(COMPOSE_RE, ln) and not ln.startswith("{"):
            # (a JSON line whose text holds " | " is not a compose prefix)
            votes["compose"] += 1
    if max(votes.values()) * 2 >= len(head):
        return max(votes, key=votes.get)
    return "plain"


def _with_origin(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(label).alias("origin"), (pl.int_range(pl.len(), dtype=pl.Int64) + 1).alias("lineno")
    )


PARTIAL_SIZE = 16 * 1024


def _unsplit(text: str) -> str:
    """Undo the engine's 16 KB split of a long line in timestamped output.

    `docker logs -t` (and the API with timestamps) prints each 16 KB chunk of a
    long line behind its own copy of the line's timestamp, without a newline:
    `TS <16384 chars>TS <16384 chars>TS <rest>`. The copies are removed.
    """
    cut = text.find(" ") + 1
    if cut <= 0 or len(text) <= cut + PARTIAL_SIZE:
        return text
    stamp, body, out = text[:cut], text[cut:], []
    while len(body) > PARTIAL_SIZE and body[PARTIAL_SIZE:].startswith(stamp):
        out.append(body[:PARTIAL_SIZE])
        body = body[PARTIAL_SIZE + len(stamp) :]
    out.append(body)
    return stamp + "".join(out)


def _unsplit_compose(text: str) -> str:
    head, sep, rest = text.partition("| ")
    return head + sep + _unsplit(rest) if sep else text


def _long(raw: pl.Expr, fix) -> pl.Expr:
    """`fix` applied only to the (rare) lines long enough to have been split."""
    return (
        pl.when(raw.str.len_bytes() > PARTIAL_SIZE)
        .then(raw.map_elements(fix, return_dtype=pl.String, skip_nulls=True))
        .otherwise(raw)
    )


def split_timestamped(raw: pl.DataFrame) -> pl.DataFrame:
    """Rows whose `line` is `TS text` → `engine_ts` + `line` (16 KB splits undone)."""
    raw = raw.with_columns(_long(pl.col("line"), _unsplit).alias("line"))
    return _split_stamp(raw, "line").filter(pl.col("engine_ts").is_not_null())


def _split_stamp(frame: pl.DataFrame, col: str) -> pl.DataFrame:
    """`TS text` in `col` → `engine_ts` + `line`; rows without a stamp keep a null time."""
    sp = pl.col(col).str.find(" ", literal=True)
    head = pl.col(col).str.slice(0, sp)
    is_stamp = head.str.len_bytes().is_between(19, 40) & head.str.contains(r"^\d{4}-\d\d-\d\dT")
    frame = frame.with_columns(
        pl.when(is_stamp).then(head).otherwise(None).alias("_ts"),
        pl.when(is_stamp).then(pl.col(col).str.slice(sp + 1)).otherwise(pl.col(col)).alias("line"),
    )
    return frame.with_columns(_engine_ts(frame, "_ts").alias("engine_ts")).drop("_ts")


def read_compose(path: Path) -> pl.DataFrame:
    """`docker compose logs [-t] --no-color` output: `web-1  | 2025-...Z line`."""
    raw = _with_origin(pl.DataFrame(_text_lines(path)), str(path))
    raw = raw.with_columns(_long(pl.col("line"), _unsplit_compose).alias("line"))
    bar = pl.col("line").str.find("| ", literal=True)
    raw = raw.filter(bar.is_not_null()).with_columns(
        pl.col("line").str.slice(0, bar).str.strip_chars_end().alias("name"),
        pl.col("line").str.slice(bar + 2).alias("_rest"),
    )
    raw = raw.filter(
        pl.col("name").str.len_bytes() > 0, ~pl.col("name").str.contains(" ", literal=True)
    )
    parts = _split_stamp(raw, "_rest")
    return parts.select(
        service_from_container(pl.col("name")).alias("service"),
        pl.lit(None, dtype=pl.String).alias("stream"),
        pl.col("engine_ts"),
        pl.col("line"),
        pl.col("origin"),
        pl.col("lineno"),
        (pl.lit(f"{path}#") + pl.col("name")).alias("part"),
    )


def read_docker_t(path: Path, service: str, stream: str | None = None) -> pl.DataFrame:
    """`docker logs -t` output: `2025-...Z line`."""
    raw = _with_origin(pl.DataFrame(_text_lines(path)), str(path))
    return split_timestamped(raw).select(
        pl.lit(service).alias("service"),
        pl.lit(stream, dtype=pl.String).alias("stream"),
        pl.col("engine_ts"),
        pl.col("line"),
        pl.col("origin"),
        pl.col("lineno"),
        pl.lit(str(path)).alias("part"),
    )


def _json_file_service(path: Path) -> str:
    """The compose service (or container name) from the engine's config.v2.json beside the log."""
    config = path.parent / "config.v2.json"
    try:
        doc = json.loads(config.read_text())
        labels = doc.get("Config", {}).get("Labels") or {}
        if labels.get("com.docker.compose.service"):
            return utf8(str(labels["com.docker.compose.service"]))
        if doc.get("Name"):
            return utf8(doc["Name"].lstrip("/"))
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        pass
    return path.name.removesuffix("-json.log")[:12]


_ENTRY = pl.Struct({"log": pl.String, "stream": pl.String, "time": pl.String})


def _json_entries(raw: pl.DataFrame, path: Path, problems: list[str] | None) -> pl.DataFrame:
    """``n``, ``log``, ``stream``, ``time`` of a json-file log's entries (``raw``: n, line).

    Decoded in one vectorised pass; when a line breaks it (not JSON, a value of another
    type), line by line instead, so that such a line costs only itself. Lines that are
    no entry are named once in ``problems`` (the first one's number and how many).
    """
    text = pl.col("line").str.strip_chars()
    objects = raw.filter(text.str.starts_with("{"))
    try:
        docs = objects.select("n", pl.col("line").str.json_decode(_ENTRY).alias("d")).unnest("d")
    except pl.exceptions.PolarsError:
        docs = _entries_one_by_one(objects)
    bad = raw.filter(text != "").join(docs.drop_nulls("log").select("n"), on="n", how="anti")
    if problems is not None and not bad.is_empty():
        problems.append(
            f"{path}:{bad['n'][0]}: {bad.height} line(s) are not json-file log entries; skipped"
        )
    return docs


def _entries_one_by_one(objects: pl.DataFrame) -> pl.DataFrame:
    rows: dict[str, list] = {"n": [], "log": [], "stream": [], "time": []}
    for n, line in objects.select("n", "line").iter_rows():
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), str | None) for k in ("log", "stream", "time")
        ):
            continue
        rows["n"].append(n)
        for key in ("log", "stream", "time"):
            value = doc.get(key)
            rows[key].append(None if value is None else utf8(value))
    schema = {"n": pl.UInt32, "log": pl.String, "stream": pl.String, "time": pl.String}
    return pl.DataFrame(rows, schema=schema)


def read_json_file(
    path: Path, service: str | None = None, problems: list[str] | None = None
) -> pl.DataFrame:
    """json-file driver log; lines the engine split at 16 KB (no trailing \\n) joined back.

    A line that is not an entry is skipped (and noted in ``problems`` when given).
    """
    service = service or _json_file_service(path)
    raw = pl.DataFrame(_text_lines(path)).with_row_index("n", offset=1)
    docs = _json_entries(raw, path, problems)
    docs = docs.filter(pl.col("log").is_not_null())
    # A record ends at a chunk whose text ends with "\n"; chunks before it (partials) join it.
    ends = pl.col("log").str.ends_with("\n")
    docs = docs.with_columns(
        ends.cast(pl.Int64).shift(1, fill_value=1).cum_sum().over("stream").alias("rec")
    )
    joined = docs.group_by("stream", "rec", maintain_order=True).agg(
        pl.col("time").first(), pl.col("log").str.join(""), pl.col("n").first()
    )
    return joined.select(
        pl.lit(service).alias("service"),
        pl.col("stream"),
        parse_engine_ts(pl.col("time")).alias("engine_ts"),
        pl.col("log").str.strip_suffix("\n").str.strip_suffix("\r").alias("line"),
        pl.lit(str(path)).alias("origin"),
        pl.col("n").cast(pl.Int64).alias("lineno"),
        (pl.lit(f"{path}#") + pl.col("stream")).alias("part"),
    )


def read_plain(path: Path, service: str | None = None) -> pl.DataFrame:
    """A plain process log: times come from the lines themselves."""
    stem = path.name.split(".")[0] or path.name
    suffix = path.suffix.lstrip(".")
    stream = suffix if suffix in ("stdout", "stderr") else None
    raw = _with_origin(pl.DataFrame(_text_lines(path)), str(path))
    return raw.select(
        pl.lit(service or stem).alias("service"),
        pl.lit(stream, dtype=pl.String).alias("stream"),
        pl.lit(None, dtype=TS).alias("engine_ts"),
        pl.col("line"),
        pl.col("origin"),
        pl.col("lineno"),
        pl.lit(str(path)).alias("part"),
    )


def read_file(
    path: Path, service: str | None = None, problems: list[str] | None = None
) -> pl.DataFrame:
    """One log file of any supported format into the lines frame.

    Lines a format cannot take (a json-file line that is no entry) are skipped, and
    named in ``problems`` when given.
    """
    kind = sniff(path)
    if kind == "json":
        frame = read_json_file(path, service, problems)
    elif kind == "compose":
        frame = read_compose(path)
    elif kind == "docker":
        stem = path.name.split(".")[0] or path.name
        suffix = path.suffix.lstrip(".")
        frame = read_docker_t(
            path, service or stem, suffix if suffix in ("stdout", "stderr") else None
        )
    else:
        frame = read_plain(path, service)
    return frame.select([pl.col(n).cast(t) for n, t in LINES_SCHEMA.items()])


def lines_frame(rows: list[dict]) -> pl.DataFrame:
    """A lines frame from Python rows (used by the Docker API reader)."""
    return pl.DataFrame(rows, schema=LINES_SCHEMA)


def records(lines: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Group continuation lines (tracebacks, multi-line reports) with their record.

    Adds `text` (all lines of the record, joined by newlines; null when the record
    is its first line alone); `line` stays the first line. Only rows that really
    continue something are aggregated, so the common one-line record costs no group-by.
    """
    lf = lines.lazy().with_row_index("_i")
    lf = lf.with_columns(pl.col("line").str.contains(HEADER_RE).alias("_head"))
    # In a log whose producers stamp their lines, any unstamped line continues the
    # record above it (tracebacks, Celery's multi-line "unregistered task" report);
    # elsewhere only lines that look like a traceback do.
    stamped = pl.col("_head").mean().over("part") >= 0.1
    cont = (~pl.col("_head")) & (stamped | pl.col("line").str.contains(CONTINUATION_RE))
    # the first line of a part continues nothing: it is a record of its own, not lost
    cont = cont & (pl.int_range(pl.len()).over("part") > 0)
    lf = lf.with_columns(cont.alias("_cont"))
    lf = lf.with_columns((~pl.col("_cont")).cast(pl.Int64).cum_sum().over("part").alias("_rec"))
    tails = (
        lf.filter(pl.col("_cont"))
        .group_by("part", "_rec")
        .agg(pl.col("line").sort_by("_i").str.join("\n").alias("_tail"))
    )
    heads = lf.filter(~pl.col("_cont"))
    return (
        heads.join(tails, on=["part", "_rec"], how="left")
        .sort("_i")
        .with_columns(
            # null for one-line records (most): the text is then `line` itself
            (pl.col("line") + "\n" + pl.col("_tail")).alias("text")
        )
        .drop("_tail", "_cont", "_rec", "_i", "_head")
    )
