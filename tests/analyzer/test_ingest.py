"""The compacted store: incremental ingest, lookups equal to raw lookups, transparent use."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from argparse import Namespace
from pathlib import Path

import polars as pl
import pytest
from wsanalyze.sources import Query, SourceError, load_events
from wsanalyze.sources.store import CompactedStore, ingest

ROOT = Path(__file__).resolve().parents[2]


def generate(out: Path, spans: int = 3000, seed: int = 5) -> dict:
    spec = importlib.util.spec_from_file_location("wsgen", ROOT / "benchmarks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = Namespace(spans=spans, out=str(out), seed=seed, web_procs=2, worker_procs=2,
                    concurrency=40, fault_rate=0.3, max_file_mb=1, zstd=False)  # fmt: skip
    return module.generate(cfg)


def by_span(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("span_id")


@pytest.fixture
def raw(tmp_path) -> Path:
    generate(tmp_path / "raw")
    return tmp_path / "raw"


def test_compacted_lookup_equals_raw_lookup(raw, tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "nostore"))
    full = load_events(raw).events.collect()
    result = ingest(raw, tmp_path / "store")
    assert result.spans_added == full.height == result.spans_total
    assert result.parts_written == 1 and result.problems == []
    store = CompactedStore(tmp_path / "store")
    assert by_span(store.read(Query()).events.collect()).equals(by_span(full))
    for cid in full["conversation_id"].unique().sort().head(10):
        raw_one = load_events(raw, conversation_id=cid)
        stored = load_events(tmp_path / "store", conversation_id=cid)
        assert by_span(stored.events.collect()).equals(by_span(raw_one.events.collect()))
        assert stored.window_end == raw_one.window_end


def test_ingest_picks_up_only_new_files(raw, tmp_path):
    ingest(raw, tmp_path / "store")
    again = ingest(raw, tmp_path / "store")
    assert (again.files_read, again.spans_added) == (0, 0)
    generate(tmp_path / "more", spans=500, seed=9)
    new = sorted((tmp_path / "more").iterdir())[0]
    shutil.copy(new, raw / "web-new-1.jsonl")
    seen: list[str] = []
    third = ingest(raw, tmp_path / "store", progress=lambda done, total, path: seen.append(path))
    assert third.files_read == 1 and seen == [str(raw / "web-new-1.jsonl")]
    assert third.spans_added == load_events(raw / "web-new-1.jsonl").events.collect().height
    assert third.spans_total == load_events(raw).events.collect().height


def test_ingest_resumes_grown_and_rotated_files(raw, tmp_path):
    target = sorted(raw.iterdir())[0]
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(lines[:2]) + lines[2][:50])  # a writer mid-line
    ingest(raw, tmp_path / "store")
    with open(target, "wb") as fh:  # the writer finished its line and wrote more
        fh.write(b"".join(lines))
    rotated = target.with_name("web-rotated-2022-09-14T05-02-14.173.jsonl")
    os.rename(target, rotated)  # inode kept: recognised under its new name
    result = ingest(raw, tmp_path / "store")
    assert result.files_read == 1
    expected = sum(len(json.loads(x)["resourceSpans"][0]["scopeSpans"][0]["spans"]) for x in lines)
    assert result.spans_added == expected - sum(
        len(json.loads(x)["resourceSpans"][0]["scopeSpans"][0]["spans"]) for x in lines[:2]
    )
    stored = CompactedStore(tmp_path / "store").read(Query()).events.collect()
    assert stored["span_id"].is_unique().all()
    assert stored.height == load_events(raw).events.collect().height


def test_load_events_uses_the_store_plus_newer_raw_data(raw, tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "store"))
    ingest(raw, tmp_path / "store")
    result = load_events(raw)
    assert any(s.endswith(".parquet") for s in result.sources)
    assert not any(s.endswith(".jsonl") for s in result.sources)
    generate(tmp_path / "more", spans=500, seed=11)
    for f in (tmp_path / "more").iterdir():
        shutil.copy(f, raw / ("late-" + f.name))
    after = load_events(raw)
    assert any(s.endswith(".parquet") for s in after.sources)
    assert any("late-" in s for s in after.sources)
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "nostore"))
    plain = load_events(raw).events.collect()
    assert by_span(after.events.collect()).equals(by_span(plain))


def test_store_of_another_source_is_refused(raw, tmp_path):
    ingest(raw, tmp_path / "store")
    (tmp_path / "other").mkdir()
    with pytest.raises(SourceError, match="holds"):
        ingest(tmp_path / "other", tmp_path / "store")
    with pytest.raises(SourceError, match="nothing to ingest"):
        ingest(tmp_path / "missing", tmp_path / "store2")


def test_problems_survive_ingest(tmp_path):
    src = tmp_path / "raw"
    generate(src, spans=300)
    first = sorted(src.iterdir())[0]
    with open(first, "ab") as fh:
        fh.write(b'{"resourceSpans": [oops}\n')
    result = ingest(src, tmp_path / "store")
    assert len(result.problems) == 1 and "malformed line" in result.problems[0]
    assert load_events(tmp_path / "store").problems == result.problems


def test_compaction_into_slot_buckets_keeps_lookups_exact(raw, tmp_path, monkeypatch):
    import wsanalyze.sources.store.writer as store_mod

    monkeypatch.setattr(store_mod, "PART_ROWS", 400)
    monkeypatch.setattr(store_mod, "_FRAME_ROWS", 100)
    monkeypatch.setattr(store_mod, "MAX_LOOSE_PARTS", 2)
    monkeypatch.setattr(store_mod, "BUCKET_ROWS", 1000)
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "nostore"))
    ingest(raw, tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert all(p.get("bucket") for p in manifest["parts"]) and len(manifest["parts"]) >= 3
    assert sorted(p.name for p in (tmp_path / "store").glob("*.parquet")) == sorted(
        p["name"] for p in manifest["parts"]
    )
    generate(tmp_path / "more", spans=300, seed=13)
    for f in (tmp_path / "more").iterdir():
        shutil.copy(f, raw / ("late-" + f.name))
    ingest(raw, tmp_path / "store")  # one loose part beside the buckets
    full = load_events(raw).events.collect()
    stored = load_events(tmp_path / "store")
    assert by_span(stored.events.collect()).equals(by_span(full))
    for cid in full["conversation_id"].drop_nulls().unique().sort().head(15):
        one = load_events(tmp_path / "store", conversation_id=cid)
        assert len(one.sources) < len(stored.sources)  # only the slot's bucket is read
        expected = full.filter(pl.col("conversation_id") == cid)
        assert by_span(one.events.collect()).equals(by_span(expected))


def test_conversation_ids_from_store_and_newer_files(raw, tmp_path, monkeypatch):
    from wsanalyze.sources import conversation_ids

    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "store"))
    ingest(raw, tmp_path / "store")
    generate(tmp_path / "more", spans=300, seed=17)
    for f in (tmp_path / "more").iterdir():
        shutil.copy(f, raw / ("late-" + f.name))
    expected = load_events(raw).events.collect()["conversation_id"].drop_nulls().unique()
    assert conversation_ids(raw) == sorted(expected)
    assert conversation_ids(tmp_path / "store") != sorted(expected)  # the store alone is older


def test_a_file_growing_during_ingest_is_not_marked_complete(raw, tmp_path):
    target = sorted(raw.iterdir())[0]
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # the writer is mid-line
    first = ingest(raw, tmp_path / "store")
    entry = json.loads((tmp_path / "store" / "manifest.json").read_text())["files"][str(target)]
    assert entry["complete"] is False and entry["offset"] < entry["size"]
    again = ingest(raw, tmp_path / "store")  # unchanged file: its tail is looked at again
    assert again.files_read == 1 and again.spans_added == 0
    target.write_bytes(b"".join(lines))  # the line is finished
    last = ingest(raw, tmp_path / "store")
    n_last = len(json.loads(lines[-1])["resourceSpans"][0]["scopeSpans"][0]["spans"])
    assert last.spans_added == n_last
    assert first.spans_added + n_last == load_events(raw).events.collect().height


def _with_http_chains(raw: Path, tag: int, messages: list[str]) -> None:
    """Add the task spans of ``messages`` as an HTTP-started answer writes them (untagged)."""
    from wsanalyze.verdicts.testing import otlp_span

    full = load_events(raw).events.collect()
    rows = full.filter(pl.col("message_id").is_in(messages) & (pl.col("hop") == "task"))
    spans = [
        otlp_span(dict(r, conversation_id=None, span_id=f"{tag:04x}{i:012x}"))
        for i, r in enumerate(rows.to_dicts())
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]}
    lines = [
        json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [s]}]}]})
        for s in spans
    ]
    (raw / f"http-{tag}.jsonl").write_text("\n".join(lines) + "\n")


def test_store_answers_message_id_reads_from_the_untagged_rows_only(raw, tmp_path, monkeypatch):
    import wsanalyze.sources.store.writer as store_mod

    monkeypatch.setattr(store_mod, "PART_ROWS", 400)
    monkeypatch.setattr(store_mod, "_FRAME_ROWS", 100)
    monkeypatch.setattr(store_mod, "BUCKET_ROWS", 1000)
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "nostore"))
    messages = load_events(raw).events.collect()["message_id"].drop_nulls().unique().sort()
    _with_http_chains(raw, 1, messages[:6].to_list())
    ingest(raw, tmp_path / "store")
    everything = load_events(tmp_path / "store")
    for ids in (messages[:2].to_list(), messages[:6].to_list() + messages[30:40].to_list()):
        stored = load_events(tmp_path / "store", message_ids=ids)
        from_raw = load_events(raw, message_ids=ids).events.collect()
        assert from_raw.height > 0 and from_raw["conversation_id"].null_count() == from_raw.height
        assert by_span(stored.events.collect()).equals(by_span(from_raw))
        assert len(stored.sources) < len(everything.sources)  # rows of no conversation: slot -1
    app = load_events(tmp_path / "store", app_message_ids=[messages[0]]).events.collect()
    assert app["conversation_id"].null_count() > 0 and app["conversation_id"].drop_nulls().len()
    # Raw data newer than the store is read from the files too.
    _with_http_chains(raw, 2, messages[6:8].to_list())
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "store"))
    newer = load_events(raw, message_ids=messages[6:8].to_list())
    assert newer.events.collect().height > 0 and any("http-2" in s for s in newer.sources)


def test_an_old_store_without_the_id_columns_answers_a_message_id_read(tmp_path):
    raw = tmp_path / "raw"
    generate(raw, spans=300)
    ingest(raw, tmp_path / "store")
    for part in (tmp_path / "store").glob("*.parquet"):  # as a version before app ids wrote it
        pl.read_parquet(part).drop("app_message_id").write_parquet(part)
    events = load_events(tmp_path / "store", app_message_ids=["nope"]).events.collect()
    assert events.height == 0 and "app_message_id" in events.columns
