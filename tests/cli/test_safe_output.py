"""Text from traces is data in every renderer: never markup, terminal control, or diagram syntax.

The store is real: spans built with ``verdicts.testing.Trace`` whose ids, routes,
service and group names carry rich markup (``[/]``, ``[bold red]``), terminal escapes
(clear screen, set title, colours), a bidi override, Mermaid statements and HTML. Each
command runs as the installed ``wsanalyze`` in a subprocess (through the console
script's own error handling), on the OTLP files and on a compacted store made by
``ingest``. Output goes to a pipe, so rich adds no escapes of its own: any ESC byte in
it came from the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner
from wsanalyze.cli import app
from wsanalyze.render.safe_text import ID_LIMIT, ident, shown
from wsanalyze.sources.store import ingest
from wsanalyze.verdicts.testing import Trace, write_otlp

CONV = "conv-\x1b[2J[bold red]x\u202e"  # clears the screen, opens markup, reverses the rest
CONNECTION = "k1\x1b]0;pwned title\x07"  # sets the terminal's title
ROUTE = "/ws/[/]\x1b[31m/"
MARKUP_ID = "[/]"  # a closing tag with nothing to close: rich raised MarkupError (exit 70)
MERMAID_ID = 'm"];\n    client->>web: INJECTED %% x'  # a new statement and a comment
HTML_ID = "<script>alert(1)</script>"
LONG_ID = "L" * 30 + "-" + "z" * 70  # 101 characters
SERVICE = "web;\nNote over client,layer: PWNED"  # a Mermaid participant from the data
MANY = "conv-many"  # 40 messages: a timeline longer than the default 200 rows
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_traces() -> list[Trace]:
    hostile = Trace(CONV)
    hostile.connect(CONNECTION, route=ROUTE)
    hostile.message(MARKUP_ID, CONNECTION, 10, chunks=2, deliver_upto=0)  # lost
    hostile.message(LONG_ID, CONNECTION, 500, chunks=2)
    hostile.message(HTML_ID, CONNECTION, 900, chunks=1, deliver_upto=0)
    injected = Trace(MARKUP_ID, start=hostile.start)
    injected.connect("k2", at=2000)
    injected.message(MERMAID_ID, "k2", 2010, chunks=1, deliver_upto=0)
    for row in injected.rows:
        if row["service"] == "web":
            row["service"] = SERVICE
    many = Trace(MANY, start=hostile.start)
    many.connect("k3", at=3000)
    for i in range(40):
        many.message(f"m{i}", "k3", 3010 + 50 * i, chunks=1)
    return [hostile, injected, many]


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: Path) -> Run:
    """``wsanalyze ARGS`` in a subprocess, as a user runs it."""
    script = Path(sys.executable).with_name("wsanalyze")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wsanalyze.cli"]
    env = {**os.environ, "COLUMNS": "250", "WSANALYZE_STORE": str(cwd / "no-store")}
    env.pop("WSANALYZE_DEBUG", None)
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hostile") / "traces"
    write_otlp(hostile_traces(), directory)
    return directory


@pytest.fixture(scope="module", params=["otlp-files", "compacted-store"])
def source(request: pytest.FixtureRequest, files: Path) -> Path:
    if request.param == "otlp-files":
        return files
    store = files.parent / "store"
    if not store.exists():
        ingest(str(files), str(store))
    return store


def assert_inert(text: str) -> None:
    """No byte a terminal would act on: no ESC, BEL or other control, no bidi override."""
    found = RAW_CONTROLS.search(text)
    assert found is None, (
        f"raw {found.group()!r} at {found.start()}: {text[max(0, found.start() - 60) : found.start() + 20]!r}"
    )


# --- terminal -----------------------------------------------------------------------------------
def test_lost_prints_a_markup_like_id_literally(source: Path) -> None:
    run = run_cli("lost", "--traces", str(source), cwd=source.parent)
    assert run.code == 0, run.err
    assert "Traceback" not in run.err and run.err == ""
    assert f"/{MARKUP_ID}" in run.out  # the example "conversation/message", [/] as typed
    assert_inert(run.out)
    assert shown(CONV) in run.out  # conv-\x1b[2J[bold red]x\u202e, as visible escapes


def test_conversations_and_connections_escape_every_cell(source: Path) -> None:
    listed = run_cli("conversations", "--traces", str(source), cwd=source.parent)
    assert listed.code == 0, listed.err
    assert_inert(listed.out)
    assert "conv-\\x1b[2J[bold red]x\\u202e" in listed.out
    assert re.search(r"^\s*\[/\]\s", listed.out, re.M), listed.out  # markup id, own row
    conns = run_cli("connections", "--traces", str(source), cwd=source.parent)
    assert conns.code == 0, conns.err
    assert_inert(conns.out)
    assert "k1\\x1b]0;pwned title\\x07" in conns.out and "/ws/[/]\\x1b[31m/" in conns.out


def test_conversation_view_escapes_panels_titles_evidence_and_timeline(source: Path) -> None:
    run = run_cli("conversation", CONV, "--traces", str(source), cwd=source.parent)
    assert run.code == 0, run.err
    assert_inert(run.out)
    assert "conversation conv-\\x1b[2J[bold red]x\\u202e" in run.out  # the header panel
    assert f"{MARKUP_ID}: LOST" in run.out  # a panel title starting with the markup id
    assert "chat_conv-\\x1b[2J[bold red]x\\u202e" in run.out  # evidence and timeline detail
    assert HTML_ID in run.out  # the terminal is no HTML: shown as written


def test_a_service_name_is_escaped_in_the_timeline(source: Path) -> None:
    run = run_cli("conversation", MARKUP_ID, "--traces", str(source), cwd=source.parent)
    assert run.code == 0, run.err
    assert_inert(run.out)
    assert "PWNED" in run.out and "\\n" in run.out  # the service's newline, visible
    assert not any(line.lstrip().startswith("Note over") for line in run.out.splitlines())


def test_long_ids_are_cut_with_a_stable_hash_in_the_terminal_not_in_json(source: Path) -> None:
    digest = hashlib.sha256(LONG_ID.encode()).hexdigest()[:8]
    short = f"{LONG_ID[:24]}…{digest}"
    run = run_cli("conversation", CONV, "--traces", str(source), cwd=source.parent)
    assert short in run.out and LONG_ID not in run.out
    assert ident(LONG_ID) == short
    data = json.loads(
        run_cli("conversation", CONV, "--traces", str(source), "--json", cwd=source.parent).out
    )
    assert LONG_ID in {m["message_id"] for m in data["messages"]}


def test_the_timeline_stops_at_200_rows_and_says_how_to_see_the_rest(source: Path) -> None:
    full = json.loads(
        run_cli("conversation", MANY, "--traces", str(source), "--json", cwd=source.parent).out
    )
    total = len(full["timeline"])
    assert total > 200
    cut = run_cli("conversation", MANY, "--traces", str(source), cwd=source.parent)
    assert cut.code == 0, cut.err
    assert f"{total - 200} more rows: --limit {total} / --json" in cut.out
    every = run_cli(
        "conversation", MANY, "--traces", str(source), "--limit", "0", cwd=source.parent
    )
    assert "more rows" not in every.out and every.out.count("group_send") == 40
    few = run_cli("conversation", MANY, "--traces", str(source), "--limit", "5", cwd=source.parent)
    assert f"{total - 5} more rows" in few.out


def test_watch_lines_are_escaped(files: Path) -> None:
    script = Path(sys.executable).with_name("wsanalyze")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wsanalyze.cli"]
    proc = subprocess.Popen(
        [*command, "watch", "--traces", str(files), "--since", "2025-01-01T00:00",
         "--interval", "0.2", "--settle", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert_inert(text + err)
    assert "conv-\\x1b[2J[bold red]x\\u202e · [/]" in text


# --- mermaid and html ---------------------------------------------------------------------------
_ENTITY = re.compile(r"#\d+;")
_STATEMENT = re.compile(
    r"    (?:autonumber"
    r"|participant (?:client|web|broker|worker|layer)(?: as [^:]+)?"
    r"|(?:client|web|broker|worker|layer)(?:->>|-x)(?:client|web|broker|worker|layer): [^:]+"
    r"|Note over client,layer: [^:]+)"
)


def test_mermaid_text_cannot_add_statements_comments_or_participants(source: Path) -> None:
    run = run_cli(
        "conversation", MARKUP_ID, "--traces", str(source), "--mermaid", cwd=source.parent
    )
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == "sequenceDiagram"
    for line in lines[1:]:
        assert _STATEMENT.fullmatch(line), line  # one statement per line, one colon at most
        data = line.partition(": ")[2] or line.partition(" as ")[2]
        text = _ENTITY.sub("", data)
        assert not set(text) & set(';#%"<>[]{}\\'), line  # only entity codes carry those
    assert "    participant web as web#59;#92;nNote over client,layer#58; PWNED" in lines
    labels = [line for line in lines if "INJECTED" in line]
    assert labels and all(
        "m#34;#93;#59;#92;n    client-#62;#62;web#58; INJECTED" in x for x in labels
    )


def test_html_escapes_a_script_in_a_message_id(source: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    run = run_cli(
        "conversation", CONV, "--traces", str(source), "--html", str(page), cwd=source.parent
    )
    assert run.code == 0, run.err
    html = page.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "[bold red]" in html  # markup means nothing in HTML: kept, escaped by html.escape


def test_json_keeps_the_raw_strings(source: Path) -> None:
    run = run_cli("conversation", CONV, "--traces", str(source), "--json", cwd=source.parent)
    data = json.loads(run.out)
    assert data["conversation_id"] == CONV
    assert {MARKUP_ID, LONG_ID, HTML_ID} <= {m["message_id"] for m in data["messages"]}
    assert "\x1b" not in run.out  # JSON escapes control characters itself


# --- errors and doctor --------------------------------------------------------------------------
def test_an_unknown_hostile_id_is_one_escaped_error_line(files: Path) -> None:
    run = run_cli("conversation", "[/]\x1b[2Jnope", "--traces", str(files), cwd=files.parent)
    assert run.code == 1, run.err
    [line] = run.err.strip().splitlines()
    assert line.startswith("error: ") and "[/]\\x1b[2Jnope" in line
    assert_inert(run.err)


def test_doctor_output_escapes_what_the_project_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import wsanalyze.doctor

    def report(*args: object, **kwargs: object) -> dict:
        check = {
            "name": "redis[/]",
            "status": "warn",
            "summary": "host \x1b[2J[bold]x",
            "evidence": ["REDIS_URL=redis://[/]\x1b]0;t\x07"],
            "fix": "set [red]it\u202e",
        }
        return {"ok": True, "checks": [check]}

    monkeypatch.setattr(wsanalyze.doctor, "run_doctor", report)
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert "WARN redis[/]: host \\x1b[2J[bold]x" in result.output
    assert "REDIS_URL=redis://[/]\\x1b]0;t\\x07" in result.output
    assert "fix: set [red]it\\u202e" in result.output


# --- the one function ---------------------------------------------------------------------------
def test_shown_escapes_every_control_and_invisible_format_character() -> None:
    categories = {"Cc", "Cf", "Cs", "Zl", "Zp"}
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in categories and shown(chr(code)) == chr(code)
    ]
    assert missed == []
    assert shown("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"
    assert shown("plain [/] text é 中") == "plain [/] text é 中"


def test_ident_keeps_short_ids_and_hashes_long_ones() -> None:
    assert ident("x" * ID_LIMIT) == "x" * ID_LIMIT
    assert ident("x" * (ID_LIMIT + 1)) != ident("x" * (ID_LIMIT + 2))  # same prefix, told apart
    assert ident(None) == "-" and ident("", placeholder="") == ""
    assert ident("\x1b" * 50).startswith("\\x1b\\x1b")
