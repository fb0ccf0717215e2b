"""The embedded store's exporter: OTLP/JSON lines in ``FILE_DIR``, one file per process.

Each export call appends one ``ExportTraceServiceRequest`` line. Files are
named ``<service>-<host>-<pid>-<start>.<n>.jsonl`` and rotated past
``FILE_MAX_BYTES``. The file is opened lazily in the exporting process and
reopened when the pid changes, so a Celery prefork child never writes into its
parent's file. Any OS error (unwritable dir, full disk) is logged once and the
batch dropped: the application never notices.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from wstrace.otlp_json import encode_request

logger = logging.getLogger(__name__)


class FileSpanExporter(SpanExporter):
    """Append OTLP/JSON lines to a per-process, size-rotated file."""

    def __init__(self, directory: Path, service_name: str, max_bytes: int) -> None:
        self._directory = Path(directory)
        self._service = _safe_name(service_name)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._pid = 0
        self._index = 0
        self._written = 0
        self._stem = ""
        self._failed_once = False

    @property
    def path(self) -> Path | None:
        """The file currently written, if any."""
        return self._directory / f"{self._stem}.{self._index}.jsonl" if self._stem else None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        line = encode_request(spans)
        with self._lock:
            try:
                handle = self._handle()
                handle.write(line)
                handle.write("\n")  # not line + "\n": that copies the whole line once more
                handle.flush()
            except OSError as exc:
                self._report(exc)
                self._close()
                return SpanExportResult.FAILURE
            self._written += len(line) + 1
            if self._written >= self._max_bytes:
                self._close()
                self._index += 1
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._close()

    def _handle(self) -> IO[str]:
        pid = os.getpid()
        if self._file is not None and pid == self._pid:
            return self._file
        if pid != self._pid:
            # New process (first use, or a forked child): never share the parent's file.
            self._file = None
            self._pid = pid
            self._index = 0
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._stem = f"{self._service}-{_safe_name(socket.gethostname())}-{pid}-{stamp}"
        self._directory.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across exports
        self._written = self._file.tell()
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _report(self, exc: OSError) -> None:
        if not self._failed_once:
            self._failed_once = True
            logger.error(
                "wstrace: cannot write traces to %s (%s); spans are dropped, the app is unaffected",
                self._directory,
                exc.strerror or exc,
            )


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "process"
