"""Bad command-line values stop at the edge: one line naming the option and the value.

Exit status 1 (a bad option value, as the README's table of exit codes says) or 2 (click's
own usage errors), never 70 (a bug of ours) and never a traceback. The known cases run
the installed ``wsanalyze`` in a subprocess; a sweep of hostile values over every
command's options runs in process, where an exception that escaped would show as such.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner
from wsanalyze.cli import app
from wsanalyze.verdicts.testing import Trace, write_otlp

LONG = "x" * 5000


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: Path) -> Run:
    script = Path(sys.executable).with_name("wsanalyze")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wsanalyze.cli"]
    env = {**os.environ, "COLUMNS": "200", "WSANALYZE_STORE": str(cwd / "no-store")}
    env.pop("WSANALYZE_DEBUG", None)
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    t = Trace("conv-ok")
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=2)
    directory = tmp_path_factory.mktemp("args") / "traces"
    write_otlp(t, directory)
    return directory


# (arguments, what the line must name); "{T}" is the trace directory, "{F}" a regular file
KNOWN = [
    (["conversations", "--traces", "{T}", "--in-flight", "nan"], ["--in-flight", "nan"]),
    (["conversations", "--traces", "{T}", "--in-flight", "inf"], ["--in-flight", "inf"]),
    (["lost", "--traces", "{T}", "--in-flight", "-1"], ["--in-flight", "-1"]),
    (["conversation", "conv-ok", "--traces", "{T}", "--in-flight", "1e400"], ["--in-flight"]),
    (["lost", "--traces", "{T}", "--since", "99999999999999999999w"],
     ["--since", "99999999999999999999w"]),
    (["conversations", "--traces", "{T}", "--until", "99999999999999999999w"], ["--until"]),
    (["conversations", "--traces", "{T}", "--since", "0001-01-01T00:00+01:00"], ["--since"]),
    (["conversation", "conv-ok", "--traces", "{T}", "--at", "garbage"], ["--at", "garbage"]),
    (["conversation", "conv-ok", "--traces", "{T}", "--at", "[/]"], ["--at", "[/]"]),
    (["conversations", "--traces", "tempo://[::1"], ["--traces", "tempo://[::1"]),
    (["conversations", "--traces", "jaeger://"], ["jaeger://"]),
    (["lost", "--traces", "jaeger://[x:1"], ["--traces", "jaeger://[x:1"]),
    (["conversations", "--traces", "jaeger://host:99999"], ["jaeger://host:99999"]),
    (["conversations", "--traces", ""], ["--traces", "empty"]),
    (["conversations", "--traces", LONG], ["--traces", "5000 characters"]),
    (["watch", "--traces", LONG], ["--traces", "5000 characters"]),
    (["watch", "--traces", "tempo://[::1"], ["--traces", "tempo://[::1"]),
    (["watch", "--traces", "{T}", "--interval", "nan"], ["--interval", "nan"]),
    (["watch", "--traces", "{T}", "--settle", "inf"], ["--settle", "inf"]),
    (["watch", "--traces", "{T}", "--since", "99999999999999999999w"], ["--since"]),
    (["ingest", "--traces", "{T}", "--store", "{F}"], ["--store", "not a directory"]),
    (["ingest", "--traces", "{T}", "--store", ""], ["--store", "empty"]),
    (["conversation", "[/]", "--traces", "{T}"], ["[/]"]),
    (["explain", "[/]"], ["[/]"]),
    (["explain", LONG], ["unknown cause", "5000 characters"]),
    (["conversations", "--traces", "{T}", "--cause", "[/]"], ["--cause", "[/]"]),
    (["conversations", "--traces", "{T}", "--outcome", "[bold]x"], ["--outcome", "[bold]x"]),
    (["conversations", "--traces", "{T}", "--limit", "-1"], ["--limit", "-1"]),
    (["connections", "--traces", "{T}", "--limit", "-5"], ["--limit", "-5"]),
    (["conversation", "conv-ok", "--traces", "{T}", "--limit", "-1"], ["--limit", "-1"]),
    (["conversations", "--traces", "{T}", "--close-codes", LONG], ["--close-codes"]),
    (["conversation", "conv-ok", "--traces", "{T}", "--html", "{T}"], ["--html"]),
    (["doctor", "--timeout", "nan"], ["--timeout", "nan"]),
    (["doctor", "--app-dir", LONG], ["--app-dir", "5000 characters"]),
    (["doctor", "--env", "[/]"], ["--env", "[/]"]),
    (["demo", "--keep", "{F}", "--scenario", "healthy"], ["--keep"]),
    (["demo", "--scenario", "[/]"], ["[/]"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "names"), KNOWN, ids=[" ".join(a)[:60].replace("\x00", "NUL") for a, _ in KNOWN]
)
def test_a_bad_value_is_one_line_naming_the_option(
    args: list[str], names: list[str], traces: Path, tmp_path: Path
) -> None:
    regular = tmp_path / "a-file"
    regular.write_text("not a directory")
    argv = [a.replace("{T}", str(traces)).replace("{F}", str(regular)) for a in args]
    run = run_cli(*argv, cwd=tmp_path)
    assert run.code in (1, 2), (run.code, run.err)
    assert "Traceback" not in run.err + run.out
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "\x1b" not in run.err


# --- a sweep of hostile values, in process ------------------------------------------------------
HOSTILE = ["", " ", LONG, "a\x00b", "[/]", "\x1b[2J", "nan", "-inf", "-1", "1e400", "http://[x"]
OPTIONS = {
    "conversation": ["--traces", "--logs", "--log-map", "--close-codes", "--in-flight", "--at",
                     "--limit"],
    "conversations": ["--logs", "--since", "--until", "--outcome", "--cause", "--limit", "--at"],
    "connections": ["--logs", "--limit", "--close-codes"],
    "lost": ["--log-map", "--since", "--until", "--in-flight"],
    "ingest": ["--store"],
    "doctor": ["--app-dir", "--env", "--worker-env", "--timeout", "--only"],
}  # fmt: skip
BASE = {"conversation": ["conv-ok"], "ingest": [], "doctor": []}


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_hostile_values_never_escape_as_exceptions(
    command: str, traces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # ingest --store " " or doctor's default app dir land here
    runner = CliRunner()
    base = [*BASE.get(command, []), "--traces", str(traces)]
    if command == "ingest":
        base += ["--store", str(tmp_path / "store")]
    for option in OPTIONS[command]:
        for value in HOSTILE:
            args = [command, *base, option, value]
            result = runner.invoke(app, args, env={"COLUMNS": "200"})
            shown = (" ".join(args))[:120]
            assert isinstance(result.exception, SystemExit | None), (shown, result.exception)
            assert result.exit_code in (0, 1, 2), (shown, result.exit_code, result.output)
            assert "Traceback" not in result.output, shown
            if result.exit_code == 1 and "FAIL" not in result.stdout:  # doctor's failed check
                assert len(result.stderr.strip().splitlines()) == 1, (shown, result.stderr)


def test_limit_zero_means_all_in_json_too(traces: Path) -> None:
    import json

    runner = CliRunner()
    result = runner.invoke(
        app, ["conversations", "--traces", str(traces), "--json", "--limit", "0"]
    )
    assert result.exit_code == 0, result.output
    assert [r["conversation_id"] for r in json.loads(result.stdout)] == ["conv-ok"]
