"""OTLP/JSON decoding without polars: bytes in, row tuples and problem lines out.

Kept free of polars so worker processes stay light. Tolerant by design: every
ExportTraceServiceRequest / TracesData line is decoded on its own, a bad line
or span becomes a problem line ("file:line: what") and the rest is kept.

Accepted variations (OTLP/JSON spec plus what real producers write):
hex or base64 ids, int64 as string or number, enums as integers or names,
absent or empty ``parentSpanId``, every AnyValue kind, unknown fields ignored,
Tempo's ``batches`` instead of ``resourceSpans``, ``instrumentationLibrarySpans``.
"""

from __future__ import annotations

import base64
import binascii
import mmap
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from wstrace import conventions as C

try:
    import orjson

    _loads = orjson.loads

    def _dumps(value: object) -> str:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()

except ImportError:  # pragma: no cover - orjson is in the analyzer extra
    import json

    _loads = json.loads

    def _dumps(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), default=repr)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Column order of the row tuples produced here (a subset of events.SCHEMA, by name).
ROW_COLUMNS: tuple[str, ...] = (
    "ts",
    "end_ts",
    "service",
    "conversation_id",
    "connection_id",
    "message_id",
    "hop",
    "event",
    "name",
    "kind",
    "status",
    "status_message",
    "exception",
    "cause",
    "close_code",
    "closed_by",
    "accepted",
    "handshake_rejected",
    "origin_allowed",
    "user_authenticated",
    "seq",
    "group",
    "channel",
    "layer",
    "members",
    "receivers",
    "over_capacity",
    "message_type",
    "task_id",
    "task_name",
    "queue",
    "queues",
    "frame_type",
    "expects_answer",
    "app_message_id",
    "payload_hash",
    "conversation_source",
    "route",
    "trace_id",
    "span_id",
    "parent_span_id",
    "links",
    "attributes",
    "detail",
    "origin",
)

_KINDS = {
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
}
_STATUS = {
    2: "error",
    1: "ok",
    "STATUS_CODE_ERROR": "error",
    "STATUS_CODE_OK": "ok",
    "2": "error",
    "1": "ok",
}
# Attributes shown in the one-line ``detail`` column, in this order.
_DETAIL_KEYS = (
    C.PATH,
    C.CLOSE_CODE,
    C.CLOSED_BY,
    C.CAUSE,
    C.GROUP,
    C.MEMBERS,
    C.RECEIVERS,
    C.OVER_CAPACITY,
    C.TASK_NAME,
    C.QUEUE,
    C.TASK_STATE,
    C.WORKER,
)


# --- value normalization ------------------------------------------------------


_HEX = re.compile(r"[0-9a-fA-F]+")


def norm_id(value: object, size: int) -> str | None:
    """An OTLP id (hex or base64) as lowercase hex of ``size`` bytes; None when empty."""
    if not value or type(value) is not str:
        return None
    if len(value) == 2 * size and _HEX.fullmatch(value):
        return value.lower()
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=False)
    except (binascii.Error, ValueError):
        return value.lower()
    if len(raw) == size:
        return raw.hex()
    if raw and len(raw) < size and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower().rjust(2 * size, "0")  # leading zeros lost (Tempo search)
    return value.lower() if not raw else raw.hex()


def any_value(value: object) -> object:
    """Decode an OTLP AnyValue object into a plain Python value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw)
        except (TypeError, ValueError):
            return raw
    if "boolValue" in value:
        raw = value["boolValue"]
        return raw if isinstance(raw, bool) else str(raw).lower() == "true"
    if "doubleValue" in value:
        raw = value["doubleValue"]
        try:
            return float(raw)
        except (TypeError, ValueError):
            return raw
    if "arrayValue" in value:
        return [any_value(v) for v in (value["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in value:
        return attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(kvs: object) -> dict[str, object]:
    """A list of OTLP KeyValue objects as a dict."""
    out: dict[str, object] = {}
    if not kvs:
        return out
    for kv in kvs:
        key = kv.get("key")
        if key is not None:
            out[key] = any_value(kv.get("value"))
    return out


def _int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    try:
        return int(float(value)) if isinstance(value, float | str) else None
    except ValueError:
        return None


def _bool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int | float):
        return bool(value)
    return None


def _str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _nanos(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n or None


def _exception(events: object) -> str | None:
    for ev in events or ():
        if ev.get("name") == C.EV_EXCEPTION:
            attrs = attributes(ev.get("attributes"))
            etype = attrs.get("exception.type")
            msg = attrs.get("exception.message")
            if etype and msg:
                return f"{etype}: {msg}"
            return _str(etype or msg) or "exception"
    return None


# --- span -> row -----------------------------------------------------------------


def _queues(value: object) -> list[str]:
    return [str(q) for q in value] if isinstance(value, list) else [str(value)]


# Attribute key -> (row index, converter); the rest of the row is filled from the span.
_ATTR_COLUMNS: dict[str, tuple[int, object]] = {
    key: (ROW_COLUMNS.index(column), convert)
    for key, column, convert in (
        (C.CONVERSATION_ID, "conversation_id", _str),
        (C.CONNECTION_ID, "connection_id", _str),
        (C.MESSAGE_ID, "message_id", _str),
        (C.HOP, "hop", _str),
        (C.EVENT, "event", _str),
        (C.CAUSE, "cause", _str),
        (C.CLOSE_CODE, "close_code", _int),
        (C.CLOSED_BY, "closed_by", _str),
        (C.ACCEPTED, "accepted", _bool),
        (C.HANDSHAKE_REJECTED, "handshake_rejected", _bool),
        (C.ORIGIN_ALLOWED, "origin_allowed", _bool),
        (C.USER_AUTHENTICATED, "user_authenticated", _bool),
        (C.SEQ, "seq", _int),
        (C.GROUP, "group", _str),
        (C.CHANNEL, "channel", _str),
        (C.LAYER, "layer", _str),
        (C.MEMBERS, "members", _int),
        (C.RECEIVERS, "receivers", _int),
        (C.OVER_CAPACITY, "over_capacity", _int),
        (C.MESSAGE_TYPE, "message_type", _str),
        (C.TASK_ID, "task_id", _str),
        (C.TASK_NAME, "task_name", _str),
        (C.QUEUE, "queue", _str),
        (C.QUEUES, "queues", _queues),
        (C.FRAME_TYPE, "frame_type", _str),
        (C.EXPECTS_ANSWER, "expects_answer", _bool),
        (C.APP_MESSAGE_ID, "app_message_id", _str),
        (C.PAYLOAD_HASH, "payload_hash", _str),
        (C.CONVERSATION_SOURCE, "conversation_source", _str),
        (C.ROUTE, "route", _str),
    )
}
_ATTR_KEYS = frozenset(_ATTR_COLUMNS)
_EMPTY: dict = {}
(_NAME, _KIND, _STATUS_I, _STATUS_MSG, _EXC, _TRACE, _SPAN, _PARENT, _LINKS, _ATTRS, _DETAIL,
 _ORIGIN) = (ROW_COLUMNS.index(c) for c in (
    "name", "kind", "status", "status_message", "exception", "trace_id", "span_id",
    "parent_span_id", "links", "attributes", "detail", "origin"))  # fmt: skip
_N = len(ROW_COLUMNS)


def span_row(span: dict, service: str | None, origin: str) -> tuple:
    """One event-table row (ROW_COLUMNS order) from one OTLP span object."""
    kvs = span.get("attributes")
    attrs = (
        {
            kv["key"]: v["stringValue"]
            if "stringValue" in (v := kv.get("value") or _EMPTY)
            else any_value(v)
            for kv in kvs
        }
        if kvs
        else {}
    )
    row: list = [None] * _N
    for key in attrs.keys() & _ATTR_KEYS:
        v = attrs[key]
        if v is not None:
            index, convert = _ATTR_COLUMNS[key]
            row[index] = v if convert is _str and type(v) is str else convert(v)
    detail = [f"{k[3:]}={attrs[k]}" for k in _DETAIL_KEYS if k in attrs]
    status = span.get("status") or _EMPTY
    status_message = status.get("message") or None
    exc = _exception(span["events"]) if span.get("events") else None
    links = span.get("links")
    if links:
        links = [i for i in (norm_id(link.get("spanId"), 8) for link in links) if i] or None
    row[0] = _nanos(span.get("startTimeUnixNano"))
    row[1] = _nanos(span.get("endTimeUnixNano"))
    row[2] = service
    name = span.get("name")
    row[_NAME] = name if name is None or type(name) is str else str(name)
    row[_KIND] = _KINDS.get(span.get("kind"))
    row[_STATUS_I] = _STATUS.get(status.get("code"), "unset")
    row[_STATUS_MSG] = status_message
    row[_EXC] = exc
    row[_TRACE] = norm_id(span.get("traceId"), 16)
    row[_SPAN] = norm_id(span.get("spanId"), 8)
    parent = span.get("parentSpanId")
    row[_PARENT] = norm_id(parent, 8) if parent else None
    row[_LINKS] = links or None
    row[_ATTRS] = _dumps(attrs)
    if exc or status_message:
        detail.append(exc or status_message)
    row[_DETAIL] = " ".join(detail) or None
    row[_ORIGIN] = origin
    return tuple(row)


def _resource_spans(doc: dict) -> list:
    rs = doc.get("resourceSpans")
    if rs is None:
        rs = doc.get("batches")  # Tempo v1 API
        if rs is None and isinstance(doc.get("result"), dict):
            rs = doc["result"].get("resourceSpans")  # Jaeger api/v3
        if rs is None and isinstance(doc.get("trace"), dict):
            rs = doc["trace"].get("resourceSpans")  # Tempo v2 API
    return rs or []


def iter_spans(doc: object) -> Iterator[tuple[str | None, dict]]:
    """(service, span) pairs of one decoded TracesData / ExportTraceServiceRequest."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    for rs in _resource_spans(doc):
        resource = rs.get("resource") or {}
        service = None
        for kv in resource.get("attributes") or ():
            if kv.get("key") == "service.name":
                service = _str(any_value(kv.get("value")))
                break
        scopes = rs.get("scopeSpans")
        if scopes is None:
            scopes = rs.get("instrumentationLibrarySpans") or ()
        for ss in scopes:
            for span in ss.get("spans") or ():
                yield service, span


# --- files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The spans a targeted read keeps: any criterion given matches (see sources.base.Query).

    ``conversation_id``: tagged with it; ``message_ids``: tagged with no conversation and
    carrying one of these message ids; ``app_message_ids``: carrying one of these as
    message or app message id. Empty: every span (a full decode).
    """

    conversation_id: str | None = None
    message_ids: frozenset[str] = frozenset()
    app_message_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.conversation_id is not None or bool(self.message_ids or self.app_message_ids)

    def keeps(self, kvs: object) -> bool:
        """Whether a span with these OTLP attributes is selected (exact, after decoding)."""
        conversation = message = app = None
        for kv in kvs or ():
            key = kv.get("key")
            if key == C.CONVERSATION_ID:
                conversation = _str(any_value(kv.get("value")))
            elif key == C.MESSAGE_ID:
                message = _str(any_value(kv.get("value")))
            elif key == C.APP_MESSAGE_ID:
                app = _str(any_value(kv.get("value")))
        if conversation is not None and conversation == self.conversation_id:
            return True
        if conversation is None and message in self.message_ids:
            return True
        return message in self.app_message_ids or app in self.app_message_ids

    def ids(self) -> frozenset[str]:
        """Every message / app message id searched for."""
        return self.message_ids | self.app_message_ids


@dataclass
class Chunk:
    """Rows and problems decoded from one file (or the part of it past an offset)."""

    path: str
    rows: list[tuple] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    window_end: int | None = None  # latest timestamp (ns) seen in this file
    end_offset: int = 0  # bytes of complete lines consumed (for incremental ingest)
    end_line: int = 0  # line number of the last complete line consumed
    spans: int = 0  # spans decoded (before any id filter)
    bytes_read: int = 0  # decoded bytes consumed
    file_size: int = 0  # size of the file when it was opened
    decoded_size: int = 0  # length of its decoded JSON lines


def _decompress_stream(raw: bytes, chunk: Chunk) -> bytes:
    """Decode concatenated zstd frames, keeping what decodes if the end is damaged."""
    import zstandard

    out: list[bytes] = []
    data = raw
    while data:
        obj = zstandard.ZstdDecompressor().decompressobj()
        try:
            out.append(obj.decompress(data))
        except zstandard.ZstdError as exc:
            chunk.problems.append(f"{chunk.path}: damaged zstd data ({exc}); later data skipped")
            break
        if not obj.eof:
            chunk.problems.append(
                f"{chunk.path}: truncated zstd stream; the incomplete end is skipped"
            )
            break
        data = obj.unused_data
    return b"".join(out)


def _decompress_framed(raw: bytes, chunk: Chunk) -> bytes:
    """Decode the collector's legacy `compression: zstd` layout: [u32 BE length][zstd frame]...

    Every frame holds one JSON message; they are joined with newlines so frame n is line n.
    """
    import zstandard

    out: list[bytes] = []
    pos, n = 0, len(raw)
    index = 0
    while pos < n:
        index += 1
        if pos + 4 > n:
            chunk.problems.append(f"{chunk.path}:{index}: truncated frame header")
            break
        size = int.from_bytes(raw[pos : pos + 4], "big")
        frame = raw[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if len(frame) < size:
            chunk.problems.append(f"{chunk.path}:{index}: truncated zstd frame")
            out.append(b"")
            break
        try:
            out.append(zstandard.ZstdDecompressor().decompressobj().decompress(frame).rstrip(b"\n"))
        except zstandard.ZstdError as exc:
            chunk.problems.append(f"{chunk.path}:{index}: damaged zstd frame ({exc})")
            out.append(b"")
    return b"\n".join(out) + b"\n" if out else b""


def read_buffer(path: str, chunk: Chunk) -> tuple[bytes | mmap.mmap, bool]:
    """The file's decoded JSON-lines bytes (mmap for plain files) and whether it was compressed."""
    with open(path, "rb") as fh:
        size = chunk.file_size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return b"", False
        head = fh.read(8)
        if head[:4] == ZSTD_MAGIC:
            fh.seek(0)
            return _decompress_stream(fh.read(), chunk), True
        if head[4:8] == ZSTD_MAGIC:
            fh.seek(0)
            return _decompress_framed(fh.read(), chunk), True
        return mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ), False


def _count_newlines(buf: bytes | mmap.mmap, start: int, stop: int) -> int:
    if isinstance(buf, bytes):
        return buf.count(b"\n", start, stop)
    count = 0
    pos = buf.find(b"\n", start, stop)
    while pos != -1:
        count += 1
        pos = buf.find(b"\n", pos + 1, stop)
    return count


def _decode_line(
    line: bytes,
    lineno: int,
    chunk: Chunk,
    keep: Selection | None,
) -> int | None:
    """Decode one line into chunk.rows (only the spans ``keep`` selects, if given).

    Returns the latest timestamp in the line, or None.
    """
    if not line.strip():
        return None
    origin = f"{chunk.path}:{lineno}"
    try:
        doc = _loads(line)
        pairs = list(iter_spans(doc))
    except Exception as exc:
        text = str(exc)
        truncated = "end of data" in text or "EOF" in text or "Unterminated" in text
        what = "truncated line" if truncated else "malformed line"
        chunk.problems.append(f"{origin}: {what} ({type(exc).__name__}: {str(exc)[:80]})")
        return None
    latest = None
    rows = chunk.rows
    bad = 0
    for service, span in pairs:
        try:
            if keep and not keep.keeps(span.get("attributes")):
                end = _nanos(span.get("endTimeUnixNano"))
                if end and (latest is None or end > latest):
                    latest = end
                continue
            row = span_row(span, service, origin)
        except Exception:
            bad += 1
            continue
        rows.append(row)
        stamp = row[1] or row[0]
        if stamp and (latest is None or stamp > latest):
            latest = stamp
    chunk.spans += len(pairs)
    if bad:
        chunk.problems.append(f"{origin}: {bad} span(s) could not be decoded and were skipped")
    return latest


def _line_latest(line: bytes) -> int | None:
    """Latest end timestamp in a line, decoded cheaply (for the data window)."""
    try:
        doc = _loads(line)
        stamps = [
            _nanos(span.get("endTimeUnixNano")) or _nanos(span.get("startTimeUnixNano"))
            for _, span in iter_spans(doc)
        ]
    except Exception:
        return None
    stamps = [s for s in stamps if s]
    return max(stamps) if stamps else None


def needles_for(conversation_id: str) -> list[bytes]:
    """Byte strings one of which appears literally in every line holding the id.

    JSON encoders differ in what they escape (non-ASCII, ``/``, ``<>&``), so the
    needle is the id's longest run of characters no encoder escapes; the exact
    match is checked after decoding. Empty when no usable run exists (decode all).
    """
    runs = re.split(r"[^A-Za-z0-9_\-.:@+=~ ,;!#$%()*\[\]{}|^`']", conversation_id)
    best = max(runs, key=len) if runs else ""
    return [best.encode()] if len(best) >= min(3, len(conversation_id)) and best else []


def read_file(
    path: str,
    *,
    conversation_id: str | None = None,
    message_ids: Iterable[str] = (),
    app_message_ids: Iterable[str] = (),
    start_offset: int = 0,
    start_line: int = 0,
    complete_only: bool = False,
    stop_offset: int | None = None,
    select: Selection | None = None,
) -> Chunk:
    """Decode one OTLP JSON-lines file (plain, zstd stream, or collector zstd frames).

    With ``conversation_id`` only lines containing the id's bytes are parsed, and only
    that conversation's spans are kept; ``message_ids`` / ``app_message_ids`` select
    more spans the same way (see ``Selection``; ``select`` gives all three at once).
    ``start_offset``/``start_line`` resume a file
    that grew since it was last read (offsets count decoded bytes); ``complete_only``
    leaves an unterminated last line for later (a writer may still be writing it).
    ``stop_offset`` (just after a newline) ends the read early: big files are read in
    line-aligned ranges by several workers.
    """
    if select is None:
        select = Selection(conversation_id, frozenset(message_ids), frozenset(app_message_ids))
    chunk = Chunk(path=path)
    try:
        buf, _ = read_buffer(path, chunk)
    except OSError as exc:
        chunk.problems.append(f"{path}: unreadable ({exc.strerror or exc})")
        return chunk
    chunk.decoded_size = len(buf)
    try:
        if stop_offset is not None and stop_offset < len(buf):
            buf = _Window(buf, stop_offset)
        _read_buffer_lines(buf, chunk, select, start_offset, start_line, complete_only)
    finally:
        if isinstance(buf, _Window):
            buf = buf.buf
        if isinstance(buf, mmap.mmap):
            buf.close()
    chunk.bytes_read = chunk.end_offset - start_offset if chunk.end_offset > start_offset else 0
    return chunk


class _Window:
    """The first ``size`` bytes of an mmap, with the few methods the line reader uses."""

    def __init__(self, buf: bytes | mmap.mmap, size: int):
        self.buf, self.size = buf, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice) -> bytes:
        start, stop, _ = key.indices(self.size)
        return self.buf[start:stop]

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        return self.buf.find(sub, start, self.size if end is None else min(end, self.size))

    def rfind(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        return self.buf.rfind(sub, start, self.size if end is None else min(end, self.size))


def _all_lines(buf: bytes | mmap.mmap, start: int, size: int) -> dict[int, int]:
    lines, pos = {}, start
    while pos < size:
        nl = buf.find(b"\n", pos, size)
        end = nl if nl != -1 else size
        lines[pos] = end
        pos = end + 1
    return lines


# More ids than this: one regex pass over the id attributes beats a find per id
# (measured at 1M spans: a find costs ~0.15 s, the regex pass ~1.2 s).
_FIND_MAX_NEEDLES = 8


def _id_value_pattern(keys: Iterable[str]) -> re.Pattern[bytes]:
    """The id attributes' keys, each with its string value when written the usual way."""
    alternatives = b"|".join(re.escape(k.encode()) for k in sorted(keys))
    return re.compile(
        rb'"(?:' + alternatives + rb')"'
        rb'(?:\s*,\s*"value"\s*:\s*\{\s*"stringValue"\s*:\s*"((?:[^"\\]|\\.)*)")?'
    )


def _line_at(buf: bytes | mmap.mmap, pos: int, size: int) -> tuple[int, int]:
    """(start, end) of the line holding byte ``pos`` (end excludes the newline)."""
    end = buf.find(b"\n", pos, size)
    return buf.rfind(b"\n", 0, pos) + 1, size if end == -1 else end


def _lines_with_ids(
    buf: bytes | mmap.mmap, select: Selection, start: int, size: int, lines: dict[int, int]
) -> None:
    """Add the lines whose id attributes hold one of ``select``'s ids (one regex pass).

    Hundreds of ids would cost a pass each with ``find``; instead every ``ws.message_id``
    (and ``ws.app_message_id``) attribute's value is compared with the set. A key whose
    value is not written as ``,"value":{"stringValue":"..."}`` (another producer's key
    order or type) cannot be checked here, so its line is decoded and checked exactly.
    """
    ids = select.ids()
    wanted = {i.encode() for i in ids}
    keys = [C.MESSAGE_ID] + ([C.APP_MESSAGE_ID] if select.app_message_ids else [])
    pattern = _id_value_pattern(keys)
    raw = buf.buf if isinstance(buf, _Window) else buf  # the regex needs the real buffer
    pos = start
    while (match := pattern.search(raw, pos, size)) is not None:
        value = match.group(1)
        if value is None or value in wanted or (b"\\" in value and _unescape(value) in ids):
            ls, le = _line_at(raw, match.start(), size)
            lines[ls] = le
            pos = le + 1  # the line is decoded anyway: skip its other ids
        else:
            pos = match.end()


def _unescape(value: bytes) -> str | None:
    try:
        return _loads(b'"' + value + b'"')
    except Exception:
        return None


def _candidate_lines(
    buf: bytes | mmap.mmap, select: Selection, start: int, size: int
) -> dict[int, int]:
    """{line start: line end} of every line that may hold a span ``select`` keeps.

    A superset (the spans are filtered exactly after decoding); every line when an
    id has no byte run that encoders never escape.
    """
    needles: list[bytes] = []
    for value in (select.conversation_id, *sorted(select.ids())):
        if value is None:
            continue
        found = needles_for(value)
        if not found:
            return _all_lines(buf, start, size)
        needles.extend(found)
    lines: dict[int, int] = {}
    if len(needles) > _FIND_MAX_NEEDLES and select.ids():
        _lines_with_ids(buf, select, start, size, lines)
        needles = needles_for(select.conversation_id) if select.conversation_id is not None else []
    for needle in dict.fromkeys(needles):
        pos = buf.find(needle, start, size)
        while pos != -1:
            ls, le = _line_at(buf, pos, size)
            lines[ls] = le
            pos = buf.find(needle, le, size)
    return lines


def _read_buffer_lines(
    buf: bytes | mmap.mmap,
    chunk: Chunk,
    select: Selection | str | None,
    start_offset: int,
    start_line: int,
    complete_only: bool = False,
) -> None:
    if select is None or isinstance(select, str):  # a conversation id, or None for everything
        select = Selection(conversation_id=select)
    size = len(buf)
    if start_offset > size:  # replaced or truncated since: start over
        start_offset, start_line = 0, 0
    if start_offset and start_offset < size and buf[start_offset - 1 : start_offset] != b"\n":
        start_offset, start_line = 0, 0
    # Complete lines end at the last newline; a tail without one is incomplete.
    last_nl = buf.rfind(b"\n", start_offset)
    complete_end = last_nl + 1 if last_nl != -1 else start_offset
    chunk.end_offset = complete_end
    if complete_only:
        size = complete_end
    latest: int | None = None
    if not select:
        pos, lineno = start_offset, start_line
        while pos < size:
            nl = buf.find(b"\n", pos, size)
            end = nl if nl != -1 else size
            lineno += 1
            stamp = _decode_line(buf[pos:end], lineno, chunk, None)
            if stamp and (latest is None or stamp > latest):
                latest = stamp
            pos = end + 1
        chunk.end_line = lineno if complete_end == size else lineno - 1
    else:
        spans = _candidate_lines(buf, select, start_offset, size)
        counted_to, lineno = start_offset, start_line
        for ls in sorted(spans):
            lineno += _count_newlines(buf, counted_to, ls)
            counted_to = ls
            stamp = _decode_line(buf[ls : spans[ls]], lineno + 1, chunk, select)
            if stamp and (latest is None or stamp > latest):
                latest = stamp
        # The data window: the file's last line holds its latest batch.
        if last_nl != -1:
            prev = buf.rfind(b"\n", start_offset, last_nl) + 1
            if prev not in spans:
                stamp = _line_latest(buf[prev:last_nl])
                if stamp and (latest is None or stamp > latest):
                    latest = stamp
        if complete_end < size and size not in spans.values():
            tail = buf[complete_end:size]
            if tail.strip():
                lineno = start_line + _count_newlines(buf, start_offset, complete_end) + 1
                chunk.problems.append(f"{chunk.path}:{lineno}: truncated line (no newline at end)")
    chunk.window_end = latest


_ID_PATTERN = (
    rb'"key":\s*"' + C.CONVERSATION_ID.encode().replace(b".", rb"\.") + rb'"\s*,\s*"value":\s*'
    rb'\{\s*"stringValue":\s*"((?:[^"\\]|\\.)*)"'
)


def scan_conversation_ids(path: str) -> tuple[set[str], list[str]]:
    """Every ws.conversation_id in a file, found by a bytes regex (no JSON decoding)."""
    chunk = Chunk(path=path)
    try:
        buf, _ = read_buffer(path, chunk)
    except OSError as exc:
        return set(), [f"{path}: unreadable ({exc.strerror or exc})"]
    try:
        found = {m.group(1) for m in re.finditer(_ID_PATTERN, buf)}
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
    ids = set()
    for raw in found:
        try:
            ids.add(_loads(b'"' + raw + b'"'))
        except Exception:
            continue
    return ids, chunk.problems
