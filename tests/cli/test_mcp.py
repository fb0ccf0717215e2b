"""``wsanalyze mcp``: the SDK's own client, in a real stdio session, gets what the CLI prints.

Every session launches ``wsanalyze mcp`` (the console script beside this interpreter)
as a subprocess and talks to it with ``mcp.client.stdio.stdio_client`` and
``ClientSession``; every result is compared with ``wsanalyze … --json`` run as a
subprocess on the same arguments. The trace store is real: the example chat app played
once per module on Redis + Daphne + Celery (``wsanalyze.demo.run.play``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.doctor.conftest import PROJ

BIN = Path(sys.executable).parent
WSANALYZE = str(BIN / "wsanalyze")
TOOLS = {"conversations", "conversation", "lost", "explain", "doctor"}


def environment() -> dict[str, str]:
    """The whole environment (the SDK's default passes only HOME, PATH and a few)."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def session(*calls: tuple[str, dict[str, Any]], cwd: Path | None = None) -> dict[str, Any]:
    """One stdio session: the tool list, then each call's result (camelCase wire shape)."""

    async def run() -> dict[str, Any]:
        params = StdioServerParameters(
            command=WSANALYZE, args=["mcp"], env=environment(), cwd=str(cwd) if cwd else None
        )
        with anyio.fail_after(90):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as mcp:
                await mcp.initialize()
                listed = await mcp.list_tools()
                results = [await mcp.call_tool(name, args) for name, args in calls]
        return {
            "tools": {t.name: t.model_dump(by_alias=True) for t in listed.tools},
            "results": [r.model_dump(by_alias=True) for r in results],
        }

    return anyio.run(run)


def text(result: dict[str, Any]) -> str:
    [block] = result["content"]
    assert block["type"] == "text"
    return block["text"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WSANALYZE, *args], capture_output=True, text=True, timeout=120, env=environment(),
        cwd=cwd, check=False,
    )  # fmt: skip


def in_parallel(fn: Any, argvs: list[list[str]]) -> list[Any]:
    """``fn(*argv)`` for each argv, a few CLI processes at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: fn(*argv), argvs))


def cli_json(*args: str) -> Any:
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cli_error(*args: str) -> str:
    """The one line the CLI prints on stderr for unusable input (exit 1)."""
    done = cli(*args)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    return line


def same_rows(data: Any) -> Any:
    """A conversation list as a set of rows, checked newest first.

    Conversations starting in the same instant (log stamps are whole seconds) come in
    no fixed order, from the CLI too (``verdicts/summaries.py`` sorts by first_ts alone).
    """
    if not isinstance(data, list):
        return data
    starts = [row["first_ts"] for row in data]
    assert starts == sorted(starts, reverse=True)
    return sorted(data, key=lambda row: row["conversation_id"])


@dataclass
class Store:
    traces: Path
    logs: Path
    ids: dict[str, str]  # scenario name → conversation id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The example app's healthy, consumer_gone and auth_rejected conversations, played once."""
    from wsanalyze.demo.run import play, scenarios_named

    workdir = tmp_path_factory.mktemp("mcp-store")
    played = play(workdir, scenarios_named(["healthy", "consumer_gone", "auth_rejected"]))
    failed = [f"{p.scenario.name}: {p.error}" for p in played if p.error]
    assert not failed, failed
    return Store(
        workdir / "traces",
        workdir / "stack-1",
        {p.scenario.name: p.conversation_id for p in played},
    )


def test_the_server_lists_five_tools_with_schemas_and_descriptions():
    tools = session()["tools"]
    assert set(tools) == TOOLS
    props = {name: set(t["inputSchema"]["properties"]) for name, t in tools.items()}
    filters = {"traces", "logs", "since", "until", "outcome", "cause", "limit", "at"}
    assert filters <= props["conversations"]
    assert {"conversation_id", "traces", "logs", "at", "close_codes", "in_flight"} <= props[
        "conversation"
    ]
    assert {"traces", "logs", "since", "until"} <= props["lost"]
    assert props["explain"] == {"cause"}
    assert {"app_dir", "settings", "env", "worker_env", "only", "traces"} <= props["doctor"]
    assert tools["conversation"]["inputSchema"]["required"] == ["conversation_id"]
    assert tools["explain"]["inputSchema"]["required"] == ["cause"]
    for name, tool in tools.items():
        assert "--json" in tool["description"], name  # says which command's JSON it returns
        described = tool["inputSchema"]["properties"].values()
        assert all(p.get("description") for p in described), name
    assert tools["conversations"]["annotations"]["readOnlyHint"] is True
    assert tools["doctor"]["annotations"]["readOnlyHint"] is False


@pytest.mark.stack
def test_every_analysis_tool_returns_the_clis_json(store: Store):
    traces, logs = str(store.traces), str(store.logs)
    gone, refused = store.ids["consumer_gone"], store.ids["auth_rejected"]
    cases = [
        ("conversations", {"traces": traces}, ["conversations", "--traces", traces]),
        ("conversations", {"traces": traces, "outcome": "lost", "since": "1d", "limit": 1},
         ["conversations", "--traces", traces, "--outcome", "lost", "--since", "1d",
          "--limit", "1"]),
        ("conversations", {"traces": traces, "cause": "auth_rejected"},
         ["conversations", "--traces", traces, "--cause", "auth_rejected"]),
        ("conversations", {"traces": traces, "logs": logs},
         ["conversations", "--traces", traces, "--logs", logs]),
        ("conversation", {"conversation_id": gone, "traces": traces},
         ["conversation", gone, "--traces", traces]),
        ("conversation", {"conversation_id": refused, "logs": logs},
         ["conversation", refused, "--logs", logs]),
        ("conversation", {"conversation_id": gone, "traces": traces, "in_flight": 0.5},
         ["conversation", gone, "--traces", traces, "--in-flight", "0.5"]),
        ("lost", {"traces": traces}, ["lost", "--traces", traces]),
        ("lost", {"traces": traces, "logs": logs}, ["lost", "--traces", traces, "--logs", logs]),
        ("explain", {"cause": "consumer_gone"}, ["explain", "consumer_gone"]),
    ]  # fmt: skip
    results = session(*[(name, args) for name, args, _ in cases])["results"]
    printed = in_parallel(cli_json, [argv for _, _, argv in cases])
    for (name, args, _), result, want in zip(cases, results, printed, strict=True):
        assert result["isError"] is False, (name, args, text(result))
        assert same_rows(json.loads(text(result))) == same_rows(want), (name, args)
    shown = json.loads(text(results[4]))
    assert shown["verdict"]["cause"] == "consumer_gone"
    assert [row["conversation_id"] for row in json.loads(text(results[1]))] == [gone]


@pytest.mark.stack
def test_at_gives_the_clis_verdict_as_of_that_moment(store: Store):
    traces, gone = str(store.traces), store.ids["consumer_gone"]
    first = cli_json("conversation", gone, "--traces", traces)["timeline"][0]["ts"]
    [result] = session(("conversation", {"conversation_id": gone, "traces": traces, "at": first}))[
        "results"
    ]
    assert result["isError"] is False, text(result)
    assert json.loads(text(result)) == cli_json("conversation", gone, "--traces", traces,
                                                "--at", first)  # fmt: skip


@pytest.mark.stack
def test_an_unknown_conversation_is_a_tool_error_naming_it(store: Store):
    traces, gone = str(store.traces), store.ids["consumer_gone"]
    typo = gone[:-1] + "?"
    [result] = session(("conversation", {"conversation_id": typo, "traces": traces}))["results"]
    assert result["isError"] is True
    assert f"no conversation {typo!r}" in text(result) and gone in text(result)  # closest known
    assert text(result) == cli_error("conversation", typo, "--traces", traces)


def test_bad_sources_and_filters_give_the_clis_one_line_error(tmp_path):
    missing, empty = str(tmp_path / "nowhere"), tmp_path / "empty"
    empty.mkdir()
    cases = [
        ("conversations", {"traces": missing}, ["conversations", "--traces", missing]),
        ("conversation", {"conversation_id": "c", "traces": str(empty)},
         ["conversation", "c", "--traces", str(empty)]),
        ("lost", {"logs": missing + ".log"}, ["lost", "--logs", missing + ".log"]),
        ("conversations", {"traces": "bogus://x"}, ["conversations", "--traces", "bogus://x"]),
        ("conversations", {"traces": "jaeger://127.0.0.1:1"},
         ["conversations", "--traces", "jaeger://127.0.0.1:1"]),
        ("conversations", {"traces": missing, "outcome": "vanished"},
         ["conversations", "--traces", missing, "--outcome", "vanished"]),
        ("conversations", {"traces": missing, "cause": "gremlins"},
         ["conversations", "--traces", missing, "--cause", "gremlins"]),
        ("lost", {"traces": missing, "since": "yesterday"},
         ["lost", "--traces", missing, "--since", "yesterday"]),
        ("conversation", {"conversation_id": "c", "traces": missing, "close_codes": "{nope"},
         ["conversation", "c", "--traces", missing, "--close-codes", "{nope"]),
        ("conversations", {"traces": "tempo://[::1"}, ["conversations", "--traces", "tempo://[::1"]),
        ("explain", {"cause": "gremlins"}, ["explain", "gremlins"]),
        ("doctor", {"app_dir": missing}, ["doctor", "--app-dir", missing]),
    ]  # fmt: skip
    results = session(*[(name, args) for name, args, _ in cases])["results"]
    printed = in_parallel(cli_error, [argv for _, _, argv in cases])
    for (name, args, _), result, want in zip(cases, results, printed, strict=True):
        assert result["isError"] is True, (name, args)
        line = text(result)
        assert "\n" not in line and "Traceback" not in line and line.startswith("error: ")
        assert line == want, (name, args)


def test_doctor_returns_the_clis_json_and_a_failed_check_is_a_result(tmp_path):
    env = {"WSTRACE_DIR": str(tmp_path / "wstrace"), "REDIS_URL": "redis://127.0.0.1:1/1"}
    only = ["asgi_router", "allowed_origins"]
    argv = ["doctor", "--app-dir", str(PROJ), "--timeout", "2", "--only", only[0], "--only",
            only[1], *[f"--env={k}={v}" for k, v in env.items()]]  # fmt: skip
    failing = {**env, "DOCTOR_ALLOWED_HOSTS": ""}
    healthy, failed = session(
        ("doctor", {"app_dir": str(PROJ), "timeout": 2, "only": only, "env": env}),
        ("doctor", {"app_dir": str(PROJ), "timeout": 2, "only": only, "env": failing}),
    )["results"]

    def comparable(report: dict[str, Any]) -> dict[str, Any]:
        report["facts"]["web"].pop("pid")  # the Django side's own process
        return report

    assert healthy["isError"] is False, text(healthy)
    assert comparable(json.loads(text(healthy))) == comparable(cli_json(*argv))
    assert failed["isError"] is False, text(failed)  # the checklist ran: a finding, not an error
    report = json.loads(text(failed))
    assert report["ok"] is False
    done = cli(*argv, "--env=DOCTOR_ALLOWED_HOSTS=", "--json")
    assert done.returncode == 1
    assert comparable(report) == comparable(json.loads(done.stdout))


def test_without_the_extra_wsanalyze_mcp_exits_1_with_the_pip_line():
    hide = "import sys; sys.modules['mcp'] = None; sys.argv = ['wsanalyze', 'mcp']; "
    done = subprocess.run(
        [sys.executable, "-c", hide + "from wsanalyze.cli import main; main()"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "pip install 'wstrace[mcp]'" in line


def test_a_bug_of_ours_is_a_one_line_tool_error_not_a_traceback(monkeypatch):
    from wsanalyze.cli.mcp_server import run_as_command

    monkeypatch.delenv("WSANALYZE_DEBUG", raising=False)

    def broken() -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    result = run_as_command(broken).model_dump(by_alias=True)
    assert result["isError"] is True
    assert text(result) == (
        "error: ZeroDivisionError: division by zero (WSANALYZE_DEBUG=1 shows the traceback)"
    )
