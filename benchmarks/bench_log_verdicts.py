"""The log-only score: every example-app scenario, played for real, judged from logs alone.

    .venv/bin/python benchmarks/bench_log_verdicts.py [--json FILE] [--keep DIR]
        [--chat NAME ...] [--room NAME ...]

Plays every scenario of both example apps on real stacks (embedded Redis,
Daphne, a Celery prefork worker) with **wstrace disabled** (``WSTRACE_ENABLED=0``:
no span exists), so the only evidence is what the processes printed: Daphne's
access and server lines, Celery's worker lines and the apps' own lines (logfmt
in ``examples/chatapp``, JSON in ``examples/roomapp``), each stack's output
captured in its ``web.log`` / ``worker.log`` as ``demo.stack.Stack`` writes them.

* the chat app: ``demo.run.ALL_SCENARIOS`` (every fault on the core layer, the
  extras, and the same faults on RedisPubSubChannelLayer); one stack per
  (layer, worker env), the stacks side by side, each stack's scenarios one after
  another (as ``demo.run.play`` does);
* the room app: ``demo.room_scenarios.ROOM_SCENARIOS``, all at once on their stacks
  (``ROOM_STACKS``), as ``tests/roomapp/conftest.py`` plays them.

Then, for each scenario, ``conversation_report(cid, logs=<that stack's log
dir>)`` (what ``wsanalyze conversation <cid> --logs DIR --json`` prints) and its
(outcome, hop, cause) against the scenario's expected verdict:

* **right**: the expected verdict (a scenario's alternative hops count);
* **unknown**: an honest ``unknown`` — the outcome or the cause is ``unknown``
  (``lost / unknown`` is how the engine says "cut off or not, the logs cannot
  tell"; the JSON keeps the outcome, so such cases can be told apart);
* **wrong**: any other verdict; **error**: the analyzer raised.

Prints the table and the totals; ``--json FILE`` writes every verdict with its
confidence, summary and evidence.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wsanalyze.demo import room_scenarios  # noqa: E402
from wsanalyze.demo import rooms as room_demo  # noqa: E402
from wsanalyze.demo import run as chat_demo  # noqa: E402
from wsanalyze.demo.redis_server import RedisServer  # noqa: E402
from wsanalyze.demo.stack import Stack  # noqa: E402

Expect = tuple[str, str | None, str]
GRADES = ("right", "unknown", "wrong", "error")

# Room scenarios whose conversation verdict is not their "message" role's.
ROOM_CONVERSATION_EXPECT: dict[str, Expect] = {
    # no message: the socket is accepted, then closed 4001 (tests/roomapp asserts the same)
    "room_auth_rejected": ("rejected", "auth", "auth_rejected"),
}


@dataclass
class Case:
    """One played scenario: where its logs are and what its verdict must be."""

    app: str
    scenario: str
    conversation_id: str
    logs: Path
    expect: Expect
    other_hops: tuple[str, ...] = ()
    at: datetime | None = None  # judge as of this moment (a scenario analyzed while connected)
    client_error: str | None = None


@dataclass
class Scored:
    """A case with the verdict the analyzer gave from its logs, and the grade."""

    app: str
    scenario: str
    conversation_id: str
    expect: Expect
    got: Expect
    grade: str
    confidence: str | None
    summary: str
    evidence: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    client_error: str | None = None
    seconds: float = 0.0


def grade(expect: Expect, got: Expect, other_hops: Sequence[str] = ()) -> str:
    """right / unknown (honest) / wrong, for a verdict (outcome, hop, cause)."""
    want_outcome, want_hop, want_cause = expect
    outcome, hop, cause = got
    if (outcome, cause) == (want_outcome, want_cause) and hop in (want_hop, *other_hops):
        return "right"
    if "unknown" in (outcome, cause):
        return "unknown"
    return "wrong"


def room_expect(scenario: room_demo.RoomScenario) -> Expect:
    """The conversation verdict a room scenario must get: its first non-delivered role's."""
    if scenario.name in ROOM_CONVERSATION_EXPECT:
        return ROOM_CONVERSATION_EXPECT[scenario.name]
    expects = list(scenario.expect.values())
    return next((e for e in expects if e != room_demo.DELIVERED), room_demo.DELIVERED)


# --- playing ---------------------------------------------------------------------------
def play_chat(workdir: Path, redis: RedisServer, names: Sequence[str] | None = None) -> list[Case]:
    """The chat app's scenarios, one stack per (layer, worker env), stacks side by side."""
    scenarios = (
        chat_demo.scenarios_named(names) if names is not None else list(chat_demo.ALL_SCENARIOS)
    )
    keys = list(dict.fromkeys(s.stack_key for s in scenarios))
    stacks: dict[tuple, Stack] = {}
    cases: dict[str, Case] = {}
    try:
        for db, key in enumerate(keys, start=1):
            layer, env = key
            stacks[key] = Stack(
                workdir / f"chatapp-{db}", redis.url_for(db), layer=layer,
                worker_env=dict(env), wstrace_enabled=False,
            ).launch()  # fmt: skip
        for stack in stacks.values():
            stack.wait_ready()

        def play_on(key: tuple) -> None:
            stack = stacks[key]
            for scenario in (s for s in scenarios if s.stack_key == key):
                p = chat_demo._play_one(stack, scenario)
                cases[scenario.name] = Case(
                    "chatapp", scenario.name, p.conversation_id, stack.workdir,
                    scenario.expect, scenario.other_hops, client_error=p.error,
                )  # fmt: skip

        threads = [threading.Thread(target=play_on, args=(key,)) for key in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        Stack.stop_all(list(stacks.values()))  # the worker's last lines reach its log
    return [cases[s.name] for s in scenarios if s.name in cases]


async def _worker_down_connected(ctx: room_demo.RoomContext) -> None:
    """As ``room_scenarios._worker_down_connected``, noting the moment instead of reading spans."""
    alice = await ctx.open_room(room_demo.new_user())
    ctx.ids["message"] = mid = await alice.say("@bot anyone home?")
    await alice.wait_for("message", mid)
    await asyncio.sleep(1.0)  # the app's lines are written; the client still waits
    ctx.notes["at"] = datetime.now(UTC)


def play_rooms(workdir: Path, redis: RedisServer, names: Sequence[str] | None = None) -> list[Case]:
    """The room app's scenarios, all at once on their ``ROOM_STACKS`` (wstrace off)."""
    scenarios = (
        room_scenarios.room_scenarios_named(names)
        if names is not None
        else list(room_scenarios.ROOM_SCENARIOS)
    )
    scenarios = [
        replace(s, play=_worker_down_connected) if s.name == "room_worker_down_connected" else s
        for s in scenarios
    ]
    kinds = list(dict.fromkeys(s.stack for s in scenarios))
    own_redis = RedisServer().start() if "redis_down" in kinds else None
    stacks: dict[str, Stack] = {}
    try:
        for db, kind in enumerate(kinds, start=40):  # dbs the chat app's stacks do not use
            url = own_redis.url if kind == "redis_down" and own_redis else redis.url_for(db)
            kwargs = {**room_demo.room_stack_kwargs(kind), "wstrace_enabled": False}
            stacks[kind] = Stack(workdir / f"roomapp-{kind}", url, **kwargs).launch()
        for kind, stack in stacks.items():
            stack.wait_ready()
            if kind == "worker_stopped":
                stack.stop_worker()
        stop_redis = own_redis.stop if own_redis else None
        played = asyncio.run(
            room_demo.play_room_scenarios(scenarios, stacks, stop_redis=stop_redis)
        )
    finally:
        Stack.stop_all(list(stacks.values()))
        if own_redis is not None:
            own_redis.stop()
    return [
        Case(
            "roomapp",
            p.scenario.name,
            p.conversation_id,
            p.stack.workdir,
            room_expect(p.scenario),
            at=p.notes.get("at"),
            client_error=p.error,
        )
        for p in played
    ]


# --- judging ---------------------------------------------------------------------------
def judge(case: Case) -> Scored:
    """The analyzer's verdict of one case from its stack's logs alone, graded."""
    from wsanalyze.analysis import conversation_report

    started = time.perf_counter()
    try:
        report = conversation_report(case.conversation_id, logs=str(case.logs), at=case.at)
    except Exception as exc:  # the analyzer crashed: reported, never counted as right
        return Scored(
            case.app, case.scenario, case.conversation_id, case.expect, ("error", None, "error"),
            "error", None, f"the analyzer raised {type(exc).__name__}: {exc}",
            [traceback.format_exc()], [], case.client_error, time.perf_counter() - started,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    v = report.verdict
    got: Expect = (v.outcome, v.hop, v.cause)
    messages = [
        {"message_id": m.message_id, "verdict": [m.outcome, m.hop, m.cause], "rule": m.rule,
         "confidence": m.confidence, "summary": m.summary, "evidence": list(m.evidence)}
        for m in report.messages
    ]  # fmt: skip
    evidence = [f"message {m.message_id}: {line}" for m in report.messages for line in m.evidence]
    evidence += [
        f"connection {c.connection_id} ({c.outcome}/{c.cause}, code {c.close_code}): {line}"
        for c in report.connections
        for line in c.evidence
    ]
    return Scored(
        case.app, case.scenario, case.conversation_id, case.expect, got,
        grade(case.expect, got, case.other_hops), v.confidence, v.summary, evidence, messages,
        case.client_error, seconds,
    )  # fmt: skip


def run_benchmark(
    workdir: Path,
    *,
    chat: Sequence[str] | None = None,
    rooms: Sequence[str] | None = None,
) -> list[Scored]:
    """Play the scenarios (``None``: all; ``()``: none of that app), then judge each from logs."""
    results: dict[str, list[Case]] = {}
    errors: list[BaseException] = []
    with RedisServer() as redis:

        def run(app: str, fn: Any, names: Sequence[str] | None) -> None:
            try:
                results[app] = fn(workdir, redis, names)
            except BaseException as exc:  # re-raised below, after the other app finished
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(app, fn, names))
            for app, fn, names in (("chatapp", play_chat, chat), ("roomapp", play_rooms, rooms))
            if names is None or len(names) > 0
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    cases = results.get("chatapp", []) + results.get("roomapp", [])
    save_cases(workdir / "cases.json", cases)
    return [judge(case) for case in cases]


def save_cases(path: Path, cases: Sequence[Case]) -> None:
    """What was played, so ``--judge-only`` can judge the kept logs again."""
    path.write_text(json.dumps([asdict(c) for c in cases], indent=2, default=str) + "\n")


def load_cases(path: Path) -> list[Case]:
    cases = []
    for doc in json.loads(path.read_text()):
        doc["logs"], doc["expect"] = Path(doc["logs"]), tuple(doc["expect"])
        doc["other_hops"] = tuple(doc["other_hops"])
        doc["at"] = datetime.fromisoformat(doc["at"]) if doc["at"] else None
        cases.append(Case(**doc))
    return cases


def totals(scored: Sequence[Scored]) -> dict[str, Any]:
    counts = {g: sum(1 for s in scored if s.grade == g) for g in GRADES}
    n = len(scored)
    return {
        "scenarios": n,
        **counts,
        "right_pct": round(100 * counts["right"] / n, 1) if n else 0.0,
    }


def _fmt(v: Expect) -> str:
    return " / ".join(x or "-" for x in v)


def table(scored: Sequence[Scored]) -> str:
    """A Markdown table of the verdicts, then the totals."""
    lines = [
        "| app | scenario | expected | from logs alone | confidence | grade |",
        "|---|---|---|---|---|---|",
    ]
    for s in scored:
        grade_text = f"**{s.grade}**" if s.grade in ("wrong", "error") else s.grade
        lines.append(
            f"| {s.app} | {s.scenario} | {_fmt(s.expect)} | {_fmt(s.got)} | "
            f"{s.confidence or '-'} | {grade_text} |"
        )
    t = totals(scored)
    lines.append("")
    lines.append(
        f"**{t['right']} of {t['scenarios']} right ({t['right_pct']} %), "
        f"{t['unknown']} honest unknown, {t['wrong']} wrong"
        + (f", {t['error']} analyzer errors" if t["error"] else "")
        + ".**"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write every verdict and the totals here")
    parser.add_argument("--keep", type=Path, help="keep the stacks' logs in this directory")
    parser.add_argument("--chat", nargs="*", help="chat-app scenarios (default: all)")
    parser.add_argument("--room", nargs="*", help="room-app scenarios (default: all)")
    parser.add_argument(
        "--judge-only", type=Path, metavar="DIR", help="judge the logs a --keep DIR run kept"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.judge_only:
        scored = [judge(case) for case in load_cases(args.judge_only / "cases.json")]
    else:
        workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-log-verdicts-"))
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            scored = run_benchmark(workdir, chat=args.chat, rooms=args.room)
        finally:
            if args.keep is None:
                shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(table(scored))
    for s in scored:
        if s.grade in ("wrong", "error") or s.client_error:
            print(f"\n{s.app} {s.scenario} ({s.conversation_id}): {s.summary}")
            if s.client_error:
                print(f"  client error: {s.client_error}")
            shown = s.evidence[0].strip().splitlines()[-4:] if s.grade == "error" else s.evidence
            for line in shown[:12]:
                print(f"  {line}")
    print(f"\n{elapsed:.0f} s (stacks, scenarios and {len(scored)} reports)")
    if args.json:
        doc = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(elapsed, 1),
            "totals": totals(scored),
            "scenarios": [asdict(s) for s in scored],
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
