"""Fuzzing the log parsers: every framing, every producer's lines, hostile values, mutated bytes.

Properties, for any file: ``load_log_events`` raises nothing but ``SourceError``,
returns rows of the event table's schema with one-line problems, ends within the
deadline, and a good line (an app line naming ``conv-good-<n>``) is still found
whatever the lines around it hold.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from .budget import fuzz_settings
from .hostile import anything, encode, mutate
from .log_lines import (
    FRAMINGS,
    GOOD_PREFIX,
    GOOD_STAMP,
    engine_stamps,
    file_name,
    framed,
    good_line,
    long_line,
    producer_line,
)
from .reading import Read, fresh, read_logs

seeded = st.randoms(use_true_random=False)


@st.composite
def hostile_log(draw: st.DrawFn) -> tuple[list[tuple[str, str]], int]:
    """(engine stamp, line) pairs with good lines among hostile ones; how many good ones."""
    lines: list[tuple[str, str]] = []
    good = draw(st.integers(1, 3))
    for tag in range(good):
        for line in draw(st.lists(producer_line(), max_size=6)):
            lines.append((draw(engine_stamps), line))
        lines.append((GOOD_STAMP, good_line(tag)))
    if draw(st.integers(0, 9)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), (GOOD_STAMP, draw(long_line())))
    return lines, good


def _found(read: Read, good: int) -> list[int]:
    """The good tags not found."""
    return [tag for tag in range(good) if read.counts.get(f"{GOOD_PREFIX}{tag}", 0) < 1]


@fuzz_settings(40)
@given(log=hostile_log(), framing=st.sampled_from(FRAMINGS))
def test_good_lines_are_found_among_hostile_ones_in_every_framing(scratch, log, framing):
    lines, good = log
    path = fresh(scratch) / file_name(framing)
    path.write_bytes(framed(lines, framing).encode("utf-8", "surrogatepass"))
    read = read_logs(path)
    assert read.error is None
    assert not _found(read, good), (_found(read, good), read.problems)


@fuzz_settings(30)
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "log": anything | producer_line() | producer_line().map(lambda s: s + "\n"),
                "stream": st.sampled_from(["stdout", "stderr"]) | anything,
                "time": engine_stamps | anything,
            },
        ).map(encode)
        | producer_line(),
        max_size=8,
    ),
    at=st.integers(0, 8),
)
def test_json_file_logs_with_hostile_entries_keep_the_good_one(scratch, entries, at):
    """json-file logs whose entries lack keys, hold other types, or are not entries at all."""
    good = json.dumps({"log": good_line(0) + "\n", "stream": "stdout", "time": GOOD_STAMP})
    entries.insert(min(at, len(entries)), good)
    # an entry that ends without "\n" is a partial: the engine joins it to the next one
    path = fresh(scratch) / "abc123-json.log"
    path.write_bytes(("\n".join(entries) + "\n").encode("utf-8", "surrogatepass"))
    read = read_logs(path)
    partial_before = any(
        e.startswith("{") and '"log"' in e and not e.endswith('\\n"}') for e in entries[:at]
    )
    assert partial_before or not _found(read, 1), read.problems


@fuzz_settings(40)
@given(
    framing=st.sampled_from(FRAMINGS),
    lines=st.lists(producer_line(), min_size=1, max_size=10),
    edits=st.integers(1, 30),
    rng=seeded,
    tz=st.sampled_from([None, "UTC", "America/Chicago", "Etc/GMT-14", "Mars/Olympus", ""]),
)
def test_mutated_log_files_never_raise(scratch, framing, lines, edits, rng, tz):
    text = framed([(GOOD_STAMP, good_line(0)), *((GOOD_STAMP, line) for line in lines)], framing)
    path = fresh(scratch) / file_name(framing)
    path.write_bytes(mutate(text.encode("utf-8", "surrogatepass"), rng, edits))
    read_logs(path, tz=tz)
