"""Fuzzing the OTLP JSON-lines reader: hostile documents, mutated bytes, damaged zstd.

Properties, for any input: the read ends (the deadline), raises nothing but
``SourceError``, names every problem on one line as ``file:line: what``, and
every good span is still returned when it sits beside bad ones: on another line,
in another resource of the same line, or in the same span list (one bad value
costs its span, never the rest).
"""

from __future__ import annotations

import functools

import zstandard
from hypothesis import given
from hypothesis import strategies as st
from wsanalyze.sources import conversation_ids

from .budget import fuzz_settings
from .hostile import encode, mutate, texts
from .otlp_docs import (
    GOOD_PREFIX,
    GOOD_SPANS,
    document,
    good_spans,
    hostile_document,
    hostile_resource_spans,
    raw_line,
)
from .reading import Read, fresh, read_traces, write_lines

ENDINGS = st.sampled_from(["\n", "", "\n\n", "\r\n"])
seeded = st.randoms(use_true_random=False)


@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[list[str], dict[str, int]]:
    """Lines of a trace file, and how many spans of each good conversation they hold.

    A good conversation's spans are alone on their line, beside a hostile ResourceSpans
    in the same line, or in the same span list as hostile spans.
    """
    lines: list[str] = []
    expected: dict[str, int] = {}
    for tag in range(draw(st.integers(1, 5))):
        placement = draw(st.sampled_from(["alone", "hostile line", "raw line", "beside", "among"]))
        good = good_spans(tag)
        if placement == "hostile line":
            lines.append(encode(draw(hostile_document())))
        elif placement == "raw line":
            lines.append(draw(raw_line()))
        if placement == "beside":
            doc = document(good)
            neighbours = draw(st.lists(hostile_resource_spans(), min_size=1, max_size=2))
            doc["resourceSpans"] = neighbours[:1] + doc["resourceSpans"] + neighbours[1:]
            lines.append(encode(doc))
        elif placement == "among":
            lines.append(encode({"resourceSpans": [draw(hostile_resource_spans(good))]}))
        else:
            lines.append(encode(document(good)))
        expected[f"{GOOD_PREFIX}{tag}"] = GOOD_SPANS
    return lines, expected


def _good_lines(n: int) -> list[bytes]:
    return [encode(document(good_spans(tag))).encode() for tag in range(n)]


@functools.cache
def _frames(n: int) -> list[bytes]:
    """Good lines as zstd frames, made once: zstandard's output varies from call to call,
    and the same example must see the same bytes (hypothesis replays it)."""
    return [zstandard.ZstdCompressor(level=1).compress(line + b"\n") for line in _good_lines(n)]


def _all_good(read: Read, n: int) -> bool:
    """Every good conversation 0..n-1 is there whole (a mutation may add spans to one)."""
    return all(read.counts.get(f"{GOOD_PREFIX}{t}", 0) >= GOOD_SPANS for t in range(n))


@fuzz_settings(100)
@given(file=hostile_file(), end=ENDINGS)
def test_good_spans_survive_any_hostile_neighbour(scratch, file, end):
    lines, expected = file
    path = write_lines(fresh(scratch) / "traces.jsonl", lines, end)
    read = read_traces(path)
    assert read.error is None
    for conversation, spans in expected.items():
        assert read.counts.get(conversation) == spans, (conversation, read.problems)
    # a lookup finds what the full read did, through the byte prefilter
    last = f"{GOOD_PREFIX}{len(expected) - 1}"
    assert read_traces(path, conversation_id=last).counts.get(last) == GOOD_SPANS
    assert set(expected) <= set(conversation_ids(path))


@fuzz_settings(100)
@given(docs=st.lists(hostile_document(), min_size=1, max_size=4), lookup=texts)
def test_hostile_documents_alone_never_raise(scratch, docs, lookup):
    """Nothing good in the file: the read still ends with problems, not an exception."""
    path = write_lines(fresh(scratch) / "traces.jsonl", [encode(doc) for doc in docs])
    read_traces(path)
    read_traces(path, conversation_id=lookup)
    read_traces(path, message_ids=[lookup], app_message_ids=[lookup, "m-bad"])
    conversation_ids(path)


@fuzz_settings(120)
@given(n=st.integers(2, 5), data=st.data(), rng=seeded)
def test_a_mutated_line_costs_only_itself(scratch, n, data, rng):
    lines = _good_lines(n)
    hit = data.draw(st.integers(0, n - 1), label="mutated line")
    lines[hit] = mutate(lines[hit], rng, data.draw(st.integers(1, 12), label="edits"), False)
    path = fresh(scratch) / "traces.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    read = read_traces(path)
    spared = [t for t in range(n) if t != hit]
    assert all(read.counts.get(f"{GOOD_PREFIX}{t}", 0) >= GOOD_SPANS for t in spared), read


@fuzz_settings(120)
@given(n=st.integers(1, 4), edits=st.integers(1, 40), rng=seeded, lookup=texts)
def test_a_mutated_file_never_raises(scratch, n, edits, rng, lookup):
    path = fresh(scratch) / "traces.jsonl"
    path.write_bytes(mutate(b"\n".join(_good_lines(n)) + b"\n", rng, edits))
    read_traces(path)
    read_traces(path, conversation_id=lookup)
    read_traces(path, conversation_id=f"{GOOD_PREFIX}0")


@fuzz_settings(100)
@given(
    n=st.integers(1, 3),
    layout=st.sampled_from(["stream", "framed"]),
    edits=st.integers(0, 12),
    rng=seeded,
)
def test_damaged_zstd_never_raises_and_keeps_what_decodes(scratch, n, layout, edits, rng):
    frames = _frames(n)
    if layout == "stream":
        data = b"".join(frames)
    else:  # the collector's [u32 length][frame]... layout
        data = b"".join(len(f).to_bytes(4, "big") + f for f in frames)
    if edits:  # the first 8 bytes kept: the file is still taken for zstd
        data = data[:8] + mutate(data[8:], rng, edits)
    path = fresh(scratch) / "traces.zst"
    path.write_bytes(data)
    read = read_traces(path)
    assert edits or _all_good(read, n)


@fuzz_settings(50)
@given(files=st.integers(0, 6), rng=seeded)
def test_a_directory_of_damaged_files_still_reads_the_good_one(scratch, files, rng):
    """Good spans in one file, copies, fragments and damaged copies of it in the others."""
    good = b"\n".join(_good_lines(3)) + b"\n"
    directory = fresh(scratch)
    (directory / "good.jsonl").write_bytes(good)
    for i in range(files):
        cut = good[: rng.randrange(len(good))]
        damaged = rng.choice([cut, mutate(good, rng, 8), b"", b"\n\n", good])
        (directory / f"other-{i}.jsonl").write_bytes(damaged)
    read = read_traces(directory)
    assert _all_good(read, 3), read.problems


def test_the_good_placement_alone_reads_every_span(scratch):
    """The fuzzers' own baseline: good lines read back whole (else every property is moot)."""
    path = write_lines(fresh(scratch) / "traces.jsonl", [encode(document(good_spans(7)))])
    read = read_traces(path)
    assert read.counts == {f"{GOOD_PREFIX}7": GOOD_SPANS} and read.problems == []
