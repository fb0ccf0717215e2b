"""Every known hostile input, kept as a regression test: tests/fuzz/corpus/.

``corpus/traces``, ``corpus/logs`` and ``corpus/stores`` hold one file (or
directory) per case, each with a ``<name>.expect.json`` beside it saying what
reading it must give: ``counts`` (rows per conversation), ``absent``
(conversations that must not appear), ``problems`` (text each found in some
problem line), ``error`` (the one-line SourceError when the whole source is
refused), ``env`` (variables for the read), ``terminal_clean`` (the terminal
output holds no escape character). Each case is read alone, beside a good file
(which must still be read whole), and all of them at once through the real
``wsanalyze`` command in a subprocess (never exit 70, never a traceback).
``corpus/redaction/cases.jsonl``: texts with the secrets redaction must remove.

To add a case: put the input and its ``.expect.json`` in the right directory.
A case that still fails in code someone else owns carries ``"xfail": "why"``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wsanalyze.logparse.redaction import redact_log_text
from wstrace.redact import redact_text

from .hostile import encode
from .otlp_docs import GOOD_PREFIX, GOOD_SPANS, document, good_spans
from .reading import Read, read_logs, read_traces

CORPUS = Path(__file__).parent / "corpus"
CONTROL = tuple(chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])


def _cases(kind: str) -> list:
    entries = sorted(p for p in (CORPUS / kind).iterdir() if not p.name.endswith(".expect.json"))
    return [pytest.param(p, id=p.name) for p in entries]


def _expect(entry: Path) -> dict:
    return json.loads(entry.with_name(entry.name + ".expect.json").read_text())


def _copy(entry: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    target = into / entry.name
    if entry.is_dir():
        shutil.copytree(entry, target)
    else:
        shutil.copy(entry, target)
    return target


def _check(read: Read, expect: dict) -> None:
    if "error" in expect:
        assert read.error is not None and expect["error"] in read.error, read.error
        return
    assert read.error is None, read.error
    for conversation, count in expect.get("counts", {}).items():
        assert read.counts.get(conversation) == count, (conversation, read.counts, read.problems)
    for conversation in expect.get("absent", []):
        assert conversation not in read.counts, conversation
    for text in expect.get("problems", []):
        assert any(text in p for p in read.problems), (text, read.problems)


def _good_file(directory: Path) -> None:
    (directory / "good.jsonl").write_text(encode(document(good_spans(0))) + "\n")


@pytest.mark.parametrize("entry", _cases("traces"))
def test_a_hostile_trace_file_costs_only_itself(entry, tmp_path, monkeypatch):
    expect = _expect(entry)
    for name, value in expect.get("env", {}).items():
        monkeypatch.setenv(name, value)
    _check(read_traces(_copy(entry, tmp_path / "alone")), expect)
    beside = tmp_path / "beside"
    _copy(entry, beside)
    _good_file(beside)
    read = read_traces(beside)
    assert read.counts.get(f"{GOOD_PREFIX}0") == GOOD_SPANS, read.problems
    _check(read, {k: v for k, v in expect.items() if k != "error"})


@pytest.mark.parametrize("entry", _cases("logs"))
def test_a_hostile_log_file_costs_only_itself(entry, tmp_path):
    _check(read_logs(_copy(entry, tmp_path)), _expect(entry))


@pytest.mark.parametrize("entry", _cases("stores"))
def test_a_damaged_store_costs_only_its_damage(entry, tmp_path):
    _check(read_traces(_copy(entry, tmp_path)), _expect(entry))


def _redaction_cases() -> list:
    params = []
    for number, raw in enumerate(
        (CORPUS / "redaction" / "cases.jsonl").read_text().splitlines(), 1
    ):
        case = json.loads(raw)
        text = case.get("text") or case["piece"] * case["times"] + case["tail"]
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
        params.append(pytest.param(text, case.get("secrets", []), id=f"case-{number}", marks=marks))
    return params


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("text", "secrets"), _redaction_cases())
def test_redaction_hides_every_planted_secret_and_is_stable(text, secrets):
    for redact in (redact_text, redact_log_text):
        once = redact(text)
        assert isinstance(once, str) and redact(once) == once, (text, once)
        assert not [s for s in secrets if s in once], (redact.__name__, once)


# --- the real command over the whole corpus --------------------------------------------------


def _wsanalyze(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the real command; fails on exit 70 or a traceback."""
    script = Path(sys.executable).with_name("wsanalyze")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wsanalyze.cli"]
    environment = {
        **os.environ,
        "WSANALYZE_STORE": str(cwd / "no-store"),
        "WSANALYZE_MAX_DECOMPRESSED_MB": "16",
        "COLUMNS": "200",
        **(env or {}),
    }
    environment.pop("WSANALYZE_DEBUG", None)
    done = subprocess.run(
        [*command, *args], capture_output=True, cwd=cwd, env=environment, timeout=120
    )
    out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode != 70 and "Traceback" not in err, (args, done.returncode, err)
    return done.returncode, out, err


@pytest.fixture(scope="module")
def corpus_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(traces, logs): every trace case and a good file in one directory; every log case."""
    root = tmp_path_factory.mktemp("corpus")
    traces, logs = root / "traces", root / "logs"
    for param in _cases("traces"):
        _copy(param.values[0], traces)
    _good_file(traces)
    for param in _cases("logs"):
        _copy(param.values[0], logs)
    return traces, logs


def test_the_commands_read_the_whole_corpus_without_a_crash(corpus_dirs, tmp_path):
    traces, logs = corpus_dirs
    code, out, _ = _wsanalyze("conversations", "--traces", str(traces), "--json", cwd=tmp_path)
    assert code == 0 and f"{GOOD_PREFIX}0" in {row["conversation_id"] for row in json.loads(out)}
    code, out, _ = _wsanalyze("conversations", "--traces", str(traces), cwd=tmp_path)
    assert code == 0 and "input problem" in out
    assert not [c for c in CONTROL if c in out], "an escape sequence reached the terminal"
    code, out, _ = _wsanalyze("lost", "--traces", str(traces), cwd=tmp_path)
    assert code == 0 and not [c for c in CONTROL if c in out]
    code, out, _ = _wsanalyze(
        "conversation", f"{GOOD_PREFIX}0", "--traces", str(traces), "--json", cwd=tmp_path
    )
    assert code == 0 and json.loads(out)["conversation_id"] == f"{GOOD_PREFIX}0"
    code, out, _ = _wsanalyze(
        "conversations", "--traces", str(traces), "--logs", str(logs), cwd=tmp_path
    )
    assert code == 0 and not [c for c in CONTROL if c in out]


@pytest.mark.parametrize("entry", _cases("stores"))
def test_the_commands_read_a_damaged_store_without_a_crash(entry, tmp_path):
    store = _copy(entry, tmp_path / "stores")
    code, _, err = _wsanalyze("conversations", "--traces", str(store), "--json", cwd=tmp_path)
    if "error" in _expect(entry):
        assert code == 1 and len(err.strip().splitlines()) == 1, err
    else:
        assert code == 0, err
    _wsanalyze("lost", "--traces", str(store), cwd=tmp_path)


def test_an_id_that_is_not_utf8_is_a_one_line_error(corpus_dirs, tmp_path):
    """A command-line argument of invalid UTF-8 arrives as a lone surrogate (surrogateescape)."""
    traces, _ = corpus_dirs
    code, _, err = _wsanalyze("conversation", "a\udcffb", "--traces", str(traces), cwd=tmp_path)
    assert code == 1 and "not valid UTF-8" in err and len(err.strip().splitlines()) == 1, err


def test_an_unknown_log_time_zone_is_a_one_line_error(corpus_dirs, tmp_path):
    _, logs = corpus_dirs
    env = {"WSANALYZE_LOG_TZ": "Mars/Olympus"}
    code, _, err = _wsanalyze("conversations", "--logs", str(logs), cwd=tmp_path, env=env)
    assert code == 1 and "unknown time zone 'Mars/Olympus'" in err, err


def test_ingest_prints_problem_lines_holding_markup_as_text(tmp_path):
    traces = tmp_path / "traces"
    _copy(CORPUS / "traces" / "markup-ids.jsonl", traces)  # a problem line quoting "[/]"
    store = tmp_path / "store"
    code, out, _ = _wsanalyze(
        "ingest", "--traces", str(traces), "--store", str(store), cwd=tmp_path
    )
    assert code == 0 and "'[/]' is not a 8-byte id" in out
