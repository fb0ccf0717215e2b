"""What reading one OTLP file (or a range of it) yields: rows, problems, where it stopped."""

from __future__ import annotations

from dataclasses import dataclass, field


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
