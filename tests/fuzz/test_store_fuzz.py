"""Fuzzing the compacted store reader (and ingest into a store) on damaged stores.

A store is a user's directory like any other: ``--traces STORE_DIR`` reads it and
``wsanalyze ingest --store DIR`` adds to it. Whatever its manifest or its Parquet
parts hold, reading raises nothing but ``SourceError`` (a manifest it cannot use,
said in one line), and a damaged part costs only its own rows: the other part's
conversation is still read.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsanalyze.sources import SourceError, conversation_ids
from wsanalyze.sources.store import ingest
from wsanalyze.sources.store.manifest import MANIFEST

from .budget import fuzz_settings
from .hostile import anything, encode, mutate
from .otlp_docs import GOOD_PREFIX, GOOD_SPANS, document, good_spans
from .reading import fresh, read_traces

seeded = st.randoms(use_true_random=False)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(traces, store): conv-good-0 and conv-good-1 ingested in turn, one part each."""
    root = tmp_path_factory.mktemp("store-template")
    traces, store = root / "traces", root / "store"
    traces.mkdir()
    for tag in (0, 1):
        (traces / f"web-{tag}.jsonl").write_text(encode(document(good_spans(tag))) + "\n")
        ingest(traces, store)
    parts = json.loads((store / MANIFEST).read_text())["parts"]
    assert len(parts) == 2, parts
    return traces, store


def _copy(template: tuple[Path, Path], scratch: Path) -> tuple[Path, Path]:
    root = fresh(scratch)
    traces, store = root / "traces", root / "store"
    shutil.copytree(template[0], traces, copy_function=shutil.copy2)
    shutil.copytree(template[1], store, copy_function=shutil.copy2)
    return traces, store


def _paths(value: object, here: tuple = ()) -> list[tuple]:
    """Every place in a decoded JSON document, as key/index paths."""
    out = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*here, index))
    return out


def _replace(doc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


_DELETE = object()


def _read_store(store: Path) -> None:
    """Every way the commands read a store; only SourceError may come out."""
    read_traces(store)
    read_traces(store, conversation_id=f"{GOOD_PREFIX}1")
    read_traces(store, message_ids=["m1"], app_message_ids=["m0"])
    with contextlib.suppress(SourceError):
        conversation_ids(store)


@fuzz_settings(80)
@given(data=st.data())
def test_a_manifest_holding_anything_is_read_or_refused_in_one_line(scratch, template, data):
    traces, store = _copy(template, scratch)
    manifest = json.loads((store / MANIFEST).read_text())
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        where = data.draw(st.sampled_from(_paths(manifest)), label="where")
        value = data.draw(anything | st.just(_DELETE) if where else anything, label="value")
        manifest = _replace(manifest, where, value)
    (store / MANIFEST).write_text(encode(manifest))
    _read_store(store)
    try:  # ingest into it: refused in one line, or done
        ingest(traces, store)
    except SourceError as exc:
        assert "\n" not in str(exc)
    _read_store(store)


@fuzz_settings(60)
@given(edits=st.integers(1, 20), rng=seeded)
def test_a_manifest_with_damaged_bytes_is_read_or_refused(scratch, template, edits, rng):
    _, store = _copy(template, scratch)
    manifest = store / MANIFEST
    manifest.write_bytes(mutate(manifest.read_bytes(), rng, edits))
    _read_store(store)


@fuzz_settings(25)  # each example decodes the parts in a child process (store.verify)
@given(
    damage=st.sampled_from(["bytes", "truncated", "empty", "footer", "swapped"]),
    edits=st.integers(1, 30),
    rng=seeded,
)
def test_a_damaged_part_costs_only_its_own_rows(scratch, template, damage, edits, rng):
    _, store = _copy(template, scratch)
    parts = [store / p["name"] for p in json.loads((store / MANIFEST).read_text())["parts"]]
    victim, spared = parts
    data = victim.read_bytes()
    if damage == "bytes":
        data = mutate(data, rng, edits)
    elif damage == "truncated":
        data = data[: rng.randrange(len(data))]
    elif damage == "empty":
        data = b""
    elif damage == "footer":  # the metadata at the end, where a reader looks first
        cut = len(data) - rng.randint(8, min(400, len(data)))
        data = data[:cut] + mutate(data[cut:], rng, edits)
    else:  # the bytes of a part's body replaced by the other part's
        data = spared.read_bytes()[: len(data) // 2] + data[len(data) // 2 :]
    victim.write_bytes(data)
    read = read_traces(store)
    assert read.error is None
    assert read.counts.get(f"{GOOD_PREFIX}1") == GOOD_SPANS, read.problems
    one = read_traces(store, conversation_id=f"{GOOD_PREFIX}1")
    assert one.counts.get(f"{GOOD_PREFIX}1") == GOOD_SPANS, one.problems


def test_the_template_store_reads_both_conversations(template):
    read = read_traces(template[1])
    assert read.counts == {f"{GOOD_PREFIX}0": GOOD_SPANS, f"{GOOD_PREFIX}1": GOOD_SPANS}
