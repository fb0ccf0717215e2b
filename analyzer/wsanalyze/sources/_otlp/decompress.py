"""A trace file's JSON-lines bytes: plain (memory-mapped), a zstd stream, or collector frames.

The layout is detected from the first bytes, not the file name. Damage is kept
to what it touches: what decodes before a bad or truncated frame is returned,
and the damage becomes a problem line on the chunk.
"""

from __future__ import annotations

import mmap
import os

from wsanalyze.sources._otlp.chunk import Chunk

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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


def is_compressed(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first 8 bytes) is zstd in either layout."""
    return head[:4] == ZSTD_MAGIC or head[4:8] == ZSTD_MAGIC


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
