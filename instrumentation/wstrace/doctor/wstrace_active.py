"""``wstrace_active``: wstrace is installed, enabled, and a span it records reaches its store.

The test span is removed from the store again, so the user's evidence holds nothing of
the doctor's. This check runs with wstrace as the app has it (not quieted): recording a
span is what it proves.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from .registry import Check, Item, Options, register
from .status import FAIL, PASS

WSTRACE_ACTIVE = Item("wstrace_active")


@register(WSTRACE_ACTIVE, quiet=False)
def check_wstrace_active(opts: Options) -> Check:
    from django.conf import settings

    apps = [a for a in settings.INSTALLED_APPS if a == "wstrace" or a.startswith("wstrace.")]
    evidence = [f"INSTALLED_APPS has {apps[0]}" if apps else "wstrace not in INSTALLED_APPS"]
    if not apps:
        return WSTRACE_ACTIVE(
            FAIL,
            "wstrace is not installed in this app",
            evidence,
            "Add 'wstrace' to INSTALLED_APPS (in the settings web and worker load).",
        )
    from wstrace import runtime

    config = runtime.config()
    env = os.environ.get("WSTRACE_ENABLED")
    evidence.append(
        f"enabled={config.enabled} (WSTRACE_ENABLED={env!r}), exporters={list(config.exporters)}"
    )
    if not runtime.active():
        return WSTRACE_ACTIVE(
            FAIL,
            "wstrace is installed but disabled",
            evidence,
            "Unset WSTRACE_ENABLED=0 (or set it to 1) and check WSTRACE settings.",
        )
    if "file" not in config.exporters:
        return WSTRACE_ACTIVE(PASS, "wstrace is active (no file exporter to check)", evidence)
    return _probe_store(Path(config.file_dir), opts.timeout, evidence)


def _probe_store(directory: Path, timeout: float, evidence: list[str]) -> Check:
    """Record a test span, flush, find it in the store, then take it out again."""
    from wstrace import provider, runtime

    evidence.append(f"FILE_DIR = {directory.resolve()}")
    before = {p: p.stat().st_size for p in directory.glob("*.jsonl")} if directory.is_dir() else {}
    with runtime.tracer().start_as_current_span("wstrace.doctor") as span:
        span.set_attribute("wstrace.doctor", True)
        trace_id = f"{span.get_span_context().trace_id:032x}"
    provider.flush(int(timeout * 1000))
    written = [
        p
        for p in (sorted(directory.glob("*.jsonl")) if directory.is_dir() else [])
        if trace_id in _appended(p, before.get(p, 0))
    ]
    if not written:
        evidence.append(f"{len(before)} file(s) there, none written by the test span")
        return WSTRACE_ACTIVE(
            FAIL,
            "wstrace is active but nothing reached its store",
            evidence,
            f"Make {directory} writable by the app (a volume in Docker) and check the logs "
            "for 'wstrace:' warnings.",
        )
    for path in written:
        _remove_probe(path, before.get(path), trace_id)
    evidence.append(f"a test span reached {written[0].name}, and was removed from it again")
    return WSTRACE_ACTIVE(PASS, "wstrace is active and writing", evidence)


def _appended(path: Path, offset: int) -> str:
    """What was appended to ``path`` past ``offset`` ('' when it cannot be read)."""
    with suppress(OSError), path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")
    return ""


def _without_trace(line: str, trace_id: str) -> str | None:
    """One OTLP/JSON line without the spans of ``trace_id`` (None when none are left)."""
    if trace_id not in line:
        return line
    try:
        request = json.loads(line)
    except ValueError:
        return line
    kept = []
    for resource in request.get("resourceSpans") or []:
        scopes = []
        for scope in resource.get("scopeSpans") or []:
            spans = [x for x in scope.get("spans") or [] if x.get("traceId") != trace_id]
            if spans:
                scopes.append({**scope, "spans": spans})
        if scopes:
            kept.append({**resource, "scopeSpans": scopes})
    return json.dumps({**request, "resourceSpans": kept}, separators=(",", ":")) if kept else None


def _file_exporters() -> list[Any]:
    """wstrace's file exporters on the global provider (best effort: SDK internals)."""
    from opentelemetry import trace

    from wstrace.file_exporter import FileSpanExporter

    processors = getattr(
        getattr(trace.get_tracer_provider(), "_active_span_processor", None),
        "_span_processors",
        (),
    )
    found = []
    for processor in processors:
        exporter = getattr(processor, "span_exporter", None) or getattr(
            getattr(processor, "_batch_processor", None), "_exporter", None
        )
        if isinstance(exporter, FileSpanExporter):
            found.append(exporter)
    return found


def _remove_probe(path: Path, size_before: int | None, trace_id: str) -> None:
    """Take the doctor's test span out of ``path``: what it appended, and nothing else.

    The file is this process's own (one file per process), so no other writer appends
    meanwhile. A file the probe created and that is left empty is deleted, after its
    exporter let go of it (it reopens the path if it exports again).
    """
    offset = size_before or 0
    lines = _appended(path, offset).splitlines()
    kept = [line for line in (_without_trace(x, trace_id) for x in lines if x) if line]
    with path.open("r+b") as handle:
        handle.truncate(offset)
        handle.seek(offset)
        handle.write("".join(f"{line}\n" for line in kept).encode())
    if size_before is None and not kept:
        owners = [e for e in _file_exporters() if e.path == path]
        for exporter in owners:
            exporter.shutdown()  # closes the file only; the next export opens it anew
        if owners and path.stat().st_size == 0:
            path.unlink()
