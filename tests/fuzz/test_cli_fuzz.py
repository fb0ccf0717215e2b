"""Fuzzed end-to-end runs of the real command line: never exit 70, never a traceback.

Exit 70 is the command line's "a bug of ours" (``wsanalyze.cli.main``): whatever a
trace directory or log file holds, ``conversations``, ``lost`` and ``conversation``
must end with 0 (problems listed), 1 (one line: nothing usable) or the code an
option asks for, and print no traceback. Runs in process (``CliRunner``): an
exception the commands do not turn into a clean error shows as ``result.exception``.
"""

from __future__ import annotations

from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner
from wsanalyze.cli import app

from .budget import fuzz_settings
from .hostile import encode, mutate
from .log_lines import GOOD_STAMP, framed, good_line, producer_line
from .otlp_docs import GOOD_PREFIX, document, good_spans, hostile_document, raw_line
from .reading import fresh, write_lines

runner = CliRunner()


def run(*args: str) -> Result:
    """``wsanalyze ARGS`` in process; fails on exit 70, a traceback or an escaped exception."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    assert escaped is None, (args, repr(escaped))
    # (stdout may quote "Traceback" from a log line: a traceback of ours goes to stderr)
    assert result.exit_code != 70 and "Traceback" not in result.stderr, (args, result.output)
    return result


@st.composite
def trace_lines(draw: st.DrawFn) -> list[str]:
    lines = [encode(document(good_spans(tag))) for tag in range(draw(st.integers(0, 2)))]
    lines += [encode(doc) for doc in draw(st.lists(hostile_document(), max_size=3))]
    lines += draw(st.lists(raw_line(), max_size=2))
    return draw(st.permutations(lines))


@fuzz_settings(12, deadline_s=30.0)
@given(
    lines=trace_lines(),
    logs=st.lists(producer_line(), max_size=6),
    edits=st.integers(0, 10),
    rng=st.randoms(use_true_random=False),
)
def test_commands_on_fuzzed_traces_and_logs_never_exit_70(scratch, lines, logs, edits, rng):
    root = fresh(scratch)
    traces = root / "traces"
    traces.mkdir()
    write_lines(traces / "web.jsonl", lines)
    damaged = (traces / "web.jsonl").read_bytes()
    (traces / "worker.jsonl").write_bytes(mutate(damaged, rng, edits) if edits else damaged)
    log = root / "web.log"
    text = framed([(GOOD_STAMP, good_line(9)), *((GOOD_STAMP, line) for line in logs)], "plain")
    log.write_bytes(text.encode("utf-8", "surrogatepass"))
    run("conversations", "--traces", str(traces), "--json")
    run("lost", "--traces", str(traces))
    run("conversations", "--traces", str(traces), "--logs", str(log), "--json")
    run("conversation", f"{GOOD_PREFIX}0", "--traces", str(traces), "--json")
