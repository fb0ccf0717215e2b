"""One OTLP JSON-lines file (or a line-aligned range of it) decoded into a ``Chunk``.

Every line is decoded on its own: a bad line or span becomes a problem line
("file:line: what") and the rest is kept. A targeted read (``Selection``) decodes
only the lines ``scan`` finds; the file's last line is still looked at, cheaply,
because it holds the latest batch and so the end of the data window.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable

from wsanalyze.sources._otlp.chunk import Chunk
from wsanalyze.sources._otlp.codec import CUT, MAX_DEPTH, holds_cut, loads, loads_lenient
from wsanalyze.sources._otlp.decompress import read_buffer
from wsanalyze.sources._otlp.rows import BadSpan, iter_spans, span_row
from wsanalyze.sources._otlp.scan import Buffer, Window, candidate_lines, count_newlines
from wsanalyze.sources._otlp.selection import Selection
from wsanalyze.sources._otlp.values import in_range, nanos


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
    lenient = False
    try:
        try:
            doc = loads(line)
        except Exception as exc:
            if line[:64].lstrip()[:1] != b"{":  # no JSON object at all: no second reading
                raise
            try:
                doc, lenient = loads_lenient(line), True
            except Exception:
                raise exc from None
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
    reason = None
    for service, span in pairs:
        try:
            if lenient and (service == CUT or holds_cut(span)):
                raise BadSpan(f"a value nested deeper than {MAX_DEPTH} levels")
            if keep and not keep.keeps(span.get("attributes")):
                end = nanos(span.get("endTimeUnixNano"))
                if end and in_range(end) and (latest is None or end > latest):
                    latest = end
                continue
            row = span_row(span, service, origin)
        except BadSpan as exc:
            bad += 1
            reason = reason or str(exc)
            continue
        except RecursionError:  # nested just short of the cut, too deep for a row
            bad += 1
            reason = reason or "a value nested too deep"
            continue
        except Exception:
            bad += 1
            continue
        rows.append(row)
        stamp = row[1] or row[0]
        if stamp and (latest is None or stamp > latest):
            latest = stamp
    chunk.spans += len(pairs)
    if bad:
        why = f" ({reason})" if reason else ""
        chunk.problems.append(f"{origin}: {bad} span(s) could not be decoded and were skipped{why}")
    return latest


def _line_latest(line: bytes) -> int | None:
    """Latest end timestamp in a line, decoded cheaply (for the data window)."""
    try:
        doc = loads(line)
        stamps = [
            nanos(span.get("endTimeUnixNano")) or nanos(span.get("startTimeUnixNano"))
            for _, span in iter_spans(doc)
        ]
    except Exception:
        return None
    stamps = [s for s in stamps if s and in_range(s)]
    return max(stamps) if stamps else None


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
    except OSError as exc:  # gone, unreadable, or no longer a regular file
        chunk.problems.append(f"{path}: unreadable ({exc.strerror or exc})")
        return chunk
    chunk.decoded_size = len(buf)
    try:
        if stop_offset is not None and stop_offset < len(buf):
            buf = Window(buf, stop_offset)
        _read_buffer_lines(buf, chunk, select, start_offset, start_line, complete_only)
    finally:
        if isinstance(buf, Window):
            buf = buf.buf
        if isinstance(buf, mmap.mmap):
            buf.close()
    chunk.bytes_read = chunk.end_offset - start_offset if chunk.end_offset > start_offset else 0
    return chunk


def _read_buffer_lines(
    buf: Buffer,
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
        spans = candidate_lines(buf, select, start_offset, size)
        counted_to, lineno = start_offset, start_line
        for ls in sorted(spans):
            lineno += count_newlines(buf, counted_to, ls)
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
                lineno = start_line + count_newlines(buf, start_offset, complete_end) + 1
                chunk.problems.append(f"{chunk.path}:{lineno}: truncated line (no newline at end)")
    chunk.window_end = latest
