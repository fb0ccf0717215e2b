"""A span read twice counts once: copied files, overlapping exports, a store plus its raw files.

Before, a ``.bak`` copy of one trace file beside it turned every verdict into
``duplicate_delivery`` (each task span seemed to run twice). Spans with the same
ids and content are now kept once, wherever the copies come from; spans that only
share ids, or a real redelivery (another span of the same task), are all kept.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from wsanalyze.sources import load_events
from wsanalyze.sources.store import ingest
from wsanalyze.verdicts.testing import Trace, write_otlp


def answered() -> Trace:
    """conv-1: one message answered in two chunks, its task run once."""
    t = Trace("conv-1")
    t.connect("k1")
    t.message("m1", "k1", chunks=2)
    return t


@pytest.fixture
def traces(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "no-store"))
    write_otlp(answered(), tmp_path / "traces")
    return tmp_path / "traces"


def files(directory: Path) -> list[Path]:
    """The trace files write_otlp made (one per service)."""
    return sorted(directory.glob("*.jsonl"))


def spans(traces: Path) -> pl.DataFrame:
    return load_events(traces).events.collect()


def verdicts(wsanalyze, traces: Path, **env: str) -> list[dict]:
    run = wsanalyze("conversations", "--traces", str(traces), "--json", env=env)
    assert run.code == 0, run.err
    return [(r["conversation_id"], r["verdict"], r["messages"]) for r in run.json]


def test_a_byte_identical_copy_of_a_trace_file_counts_once(traces, wsanalyze):
    before = verdicts(wsanalyze, traces)
    assert before[0][1]["cause"] != "duplicate_delivery"
    for original in files(traces):
        shutil.copy(original, original.with_name(original.name + ".bak"))
    assert verdicts(wsanalyze, traces) == before
    assert spans(traces).height == len(answered().rows)


def _base64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def test_a_collector_export_of_the_same_spans_counts_once(traces):
    """The same spans as the Collector writes them: base64 ids, a line per span."""
    lines = []
    for path in files(traces):
        resource = json.loads(path.read_text())["resourceSpans"][0]
        for span in resource["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if span.get(key):
                    span[key] = _base64(span[key])
            one = {"resource": resource["resource"], "scopeSpans": [{"spans": [span]}]}
            lines.append(json.dumps({"resourceSpans": [one]}, separators=(",", ":")))
    (traces / "collector-export.json").write_text("\n".join(lines) + "\n")
    events = spans(traces)
    assert events.height == len(answered().rows)
    assert events["span_id"].n_unique() == events.height


def test_a_store_plus_a_copy_of_its_raw_files_counts_once(traces, tmp_path, wsanalyze):
    store = tmp_path / "store"
    ingest(traces, store)
    for n, path in enumerate(files(traces)):
        shutil.copy(path, traces / f"rotated-copy-{n}.jsonl")  # new inodes: not covered
    before = verdicts(wsanalyze, traces, WSANALYZE_STORE=str(store))
    assert before[0][1]["cause"] != "duplicate_delivery"
    assert load_events(store).events.collect().height == len(answered().rows)
    ingest(traces, store)  # the copy is in the store now as well
    assert load_events(store).events.collect().height == len(answered().rows)
    assert verdicts(wsanalyze, store) == before


def test_a_real_redelivery_is_still_duplicate_delivery_next_to_a_copy(tmp_path, wsanalyze):
    t = Trace("conv-1")
    t.connect("k1")
    ids = t.message("m1", "k1", chunks=2)
    t.task("m1", ids["enqueue"], 3000, 10)  # redelivered: the same task, another span
    write_otlp(t, tmp_path / "traces")
    for original in files(tmp_path / "traces"):
        shutil.copy(original, original.with_name(original.name + ".bak"))
    ((_, verdict, _),) = verdicts(wsanalyze, tmp_path / "traces")
    assert verdict["cause"] == "duplicate_delivery"


def test_spans_sharing_ids_but_not_content_are_both_kept(traces):
    for n, path in enumerate(files(traces)):
        doc = json.loads(path.read_text())
        for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            span["endTimeUnixNano"] = str(int(span["endTimeUnixNano"]) + 1)
        (traces / f"other-{n}.jsonl").write_text(json.dumps(doc) + "\n")
    assert spans(traces).height == 2 * len(answered().rows)
