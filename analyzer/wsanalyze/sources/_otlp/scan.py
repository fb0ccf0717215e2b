"""Lines worth decoding, found in a file's raw bytes: id needles and one-pass id regexes.

A conversation or message lookup decodes only the lines that may hold one of
its ids, so it costs little more than a search through the bytes. Every search
here returns a superset (``read`` checks each span exactly after decoding).
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterable

from wstrace import conventions as C

from wsanalyze.sources._otlp.chunk import Chunk
from wsanalyze.sources._otlp.codec import loads
from wsanalyze.sources._otlp.decompress import read_buffer
from wsanalyze.sources._otlp.selection import Selection

# More ids than this: one regex pass over the id attributes beats a find per id
# (measured at 1M spans: a find costs ~0.15 s, the regex pass ~1.2 s).
_FIND_MAX_NEEDLES = 8


class Window:
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


Buffer = bytes | bytearray | mmap.mmap | Window


def count_newlines(buf: Buffer, start: int, stop: int) -> int:
    """Newlines in ``buf[start:stop]``, without copying an mmap."""
    if isinstance(buf, bytes | bytearray):
        return buf.count(b"\n", start, stop)
    count = 0
    pos = buf.find(b"\n", start, stop)
    while pos != -1:
        count += 1
        pos = buf.find(b"\n", pos + 1, stop)
    return count


def needles_for(conversation_id: str) -> list[bytes]:
    """Byte strings one of which appears literally in every line holding the id.

    JSON encoders differ in what they escape (non-ASCII, ``/``, ``<>&``), so the
    needle is the id's longest run of characters no encoder escapes; the exact
    match is checked after decoding. Empty when no usable run exists (decode all).
    """
    runs = re.split(r"[^A-Za-z0-9_\-.:@+=~ ,;!#$%()*\[\]{}|^`']", conversation_id)
    best = max(runs, key=len) if runs else ""
    return [best.encode()] if len(best) >= min(3, len(conversation_id)) and best else []


def _all_lines(buf: Buffer, start: int, size: int) -> dict[int, int]:
    lines, pos = {}, start
    while pos < size:
        nl = buf.find(b"\n", pos, size)
        end = nl if nl != -1 else size
        lines[pos] = end
        pos = end + 1
    return lines


def _id_value_pattern(keys: Iterable[str]) -> re.Pattern[bytes]:
    """The id attributes' keys, each with its string value when written the usual way."""
    alternatives = b"|".join(re.escape(k.encode()) for k in sorted(keys))
    return re.compile(
        rb'"(?:' + alternatives + rb')"'
        rb'(?:\s*,\s*"value"\s*:\s*\{\s*"stringValue"\s*:\s*"((?:[^"\\]|\\.)*)")?'
    )


def _line_at(buf: Buffer, pos: int, size: int) -> tuple[int, int]:
    """(start, end) of the line holding byte ``pos`` (end excludes the newline)."""
    end = buf.find(b"\n", pos, size)
    return buf.rfind(b"\n", 0, pos) + 1, size if end == -1 else end


def _lines_with_ids(
    buf: Buffer, select: Selection, start: int, size: int, lines: dict[int, int]
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
    raw = buf.buf if isinstance(buf, Window) else buf  # the regex needs the real buffer
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
        return loads(b'"' + value + b'"')
    except Exception:
        return None


def candidate_lines(buf: Buffer, select: Selection, start: int, size: int) -> dict[int, int]:
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
            ids.add(loads(b'"' + raw + b'"'))
        except Exception:
            continue
    return ids, chunk.problems
