"""A trace file's JSON-lines bytes: plain (memory-mapped), a zstd stream, or collector frames.

The layout is detected from the first bytes, not the file name. Damage is kept
to what it touches: what decodes before a bad or truncated frame is returned,
and the damage becomes a problem line on the chunk.

Decompression is bounded, so a small hostile file (a "zstd bomb") cannot take the
machine's memory: frames asking for a window over ``MAX_WINDOW`` are refused as
damaged, compressed bytes are fed ``_FEED`` at a time (zstd expands a byte at most
~32,000 times, so one step yields a few tens of MiB at most), and a file whose
decoded lines pass ``$WSANALYZE_MAX_DECOMPRESSED_MB`` (default 256 MiB) keeps the
complete lines before the limit and reports the rest as skipped.
"""

from __future__ import annotations

import mmap
import os

from wsanalyze.sources._files import open_regular
from wsanalyze.sources._otlp.chunk import Chunk

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_WINDOW = 1 << 27  # 128 MiB: libzstd's own default limit, made explicit
ENV_MAX_DECOMPRESSED = "WSANALYZE_MAX_DECOMPRESSED_MB"
DEFAULT_MAX_DECOMPRESSED_MB = 256
_FEED = 1 << 10  # compressed bytes per decompress call: at most ~32 MiB out per call

Decoded = bytes | bytearray | mmap.mmap


class _TooBig(Exception):
    """The decoded bytes passed the limit."""


def max_decompressed() -> int:
    """Decoded bytes one compressed file may hold (``$WSANALYZE_MAX_DECOMPRESSED_MB``)."""
    raw = os.environ.get(ENV_MAX_DECOMPRESSED, "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MAX_DECOMPRESSED_MB
    except ValueError:
        mb = DEFAULT_MAX_DECOMPRESSED_MB
    return int(max(mb, 1) * (1 << 20))


def _decompressor():
    import zstandard

    return zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)


def _frame(view: memoryview, pos: int, out: bytearray, limit: int, dctx) -> tuple[int, bool]:
    """Decode the zstd frame at ``view[pos:]`` into ``out``; (where it ended, whether complete).

    Raises ``zstandard.ZstdError`` on damage and ``_TooBig`` once ``out`` passes ``limit``.
    """
    obj = dctx.decompressobj()
    end = len(view)
    while pos < end:
        piece = view[pos : pos + _FEED]
        pos += len(piece)
        out += obj.decompress(piece)
        if len(out) > limit:
            raise _TooBig
        if obj.eof:
            return pos - len(obj.unused_data), True
    return pos, False


def _cut_at_limit(out: bytearray, limit: int, chunk: Chunk) -> None:
    """Keep the complete lines within ``limit`` and say that the rest was skipped."""
    del out[out.rfind(b"\n", 0, limit) + 1 :]
    chunk.problems.append(
        f"{chunk.path}: decompresses to more than {limit >> 20} MiB (the limit; raise it with "
        f"${ENV_MAX_DECOMPRESSED}); the rest of the file is skipped"
    )


def _decompress_stream(raw: bytes, chunk: Chunk) -> bytearray:
    """Decode concatenated zstd frames, keeping what decodes if the end is damaged."""
    import zstandard

    dctx, limit = _decompressor(), max_decompressed()
    out = bytearray()
    view = memoryview(raw)
    pos = 0
    while pos < len(view):
        kept = len(out)
        try:
            pos, complete = _frame(view, pos, out, limit, dctx)
        except zstandard.ZstdError as exc:
            del out[kept:]
            chunk.problems.append(f"{chunk.path}: damaged zstd data ({exc}); later data skipped")
            break
        except _TooBig:
            _cut_at_limit(out, limit, chunk)
            break
        if not complete:
            chunk.problems.append(
                f"{chunk.path}: truncated zstd stream; the incomplete end is skipped"
            )
            break
    return out


def _decompress_framed(raw: bytes, chunk: Chunk) -> bytearray:
    """Decode the collector's legacy `compression: zstd` layout: [u32 BE length][zstd frame]...

    Every frame holds one JSON message; they are joined with newlines so frame n is line n.
    """
    import zstandard

    dctx, limit = _decompressor(), max_decompressed()
    out = bytearray()
    view = memoryview(raw)
    pos, n = 0, len(raw)
    index = 0
    while pos < n:
        index += 1
        if pos + 4 > n:
            chunk.problems.append(f"{chunk.path}:{index}: truncated frame header")
            break
        size = int.from_bytes(raw[pos : pos + 4], "big")
        frame = view[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if len(frame) < size:
            chunk.problems.append(f"{chunk.path}:{index}: truncated zstd frame")
            out += b"\n"
            break
        kept = len(out)
        try:
            _, complete = _frame(frame, 0, out, limit, dctx)
            if not complete:
                raise zstandard.ZstdError("incomplete frame")
        except zstandard.ZstdError as exc:
            del out[kept:]
            chunk.problems.append(f"{chunk.path}:{index}: damaged zstd frame ({exc})")
        except _TooBig:
            _cut_at_limit(out, limit, chunk)
            break
        while len(out) > kept and out[-1] == 0x0A:  # the frame's own trailing newlines
            del out[-1]
        out += b"\n"
    return out


def is_compressed(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first 8 bytes) is zstd in either layout."""
    return head[:4] == ZSTD_MAGIC or head[4:8] == ZSTD_MAGIC


def read_buffer(path: str, chunk: Chunk) -> tuple[Decoded, bool]:
    """The file's decoded JSON-lines bytes (mmap for plain files) and whether it was compressed.

    Raises OSError when the file cannot be opened, ``_files.NotRegular`` for a FIFO,
    socket or device.
    """
    with open_regular(path) as fh:
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
