"""``wsanalyze demo``: run the example app with faults on a real stack, then analyze what it wrote.

    played = play(workdir, SCENARIOS)            # starts Redis + stacks, talks, stops (flush)
    for p in played: print(p.scenario.name, p.conversation_id)

Each :class:`ChatScenario` is one conversation: the frames a client sends, how it
behaves, which stack serves it, and the verdict the analyzer must reach. The
end-to-end tests play the same list, so the demo shows exactly what is tested.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from ..render.safe_text import plain, shown
from .chatapp_faults import FAULTS
from .client import Transcript, converse
from .redis_server import RedisServer
from .room_scenarios import DEMO_ROOM_SCENARIOS, room_scenarios_named
from .rooms import RoomPlayed, play_rooms
from .stack import Stack

# The verdict each fault of the example app must get: cause → (outcome, hop, cause).
EXPECT: dict[str, tuple[str, str | None, str]] = {
    "ok": ("delivered", "send", "ok"),
    "auth_rejected": ("rejected", "auth", "auth_rejected"),
    "origin_rejected": ("rejected", "connect", "origin_rejected"),
    # the refused frame is rejected on purpose (docs/verdicts.md); answers it cut off are lost
    "rate_limited": ("rejected", "receive", "rate_limited"),
    "invalid_message": ("rejected", "receive", "invalid_message"),
    "no_worker": ("lost", "task", "no_worker"),
    "task_failed": ("lost", "task", "task_failed"),
    "client_disconnected": ("lost", "deliver", "client_disconnected"),
    "consumer_gone": ("lost", "deliver", "consumer_gone"),
    "consumer_error": ("lost", "deliver", "consumer_error"),
    "channel_full": ("lost", "publish", "channel_full"),
    "channel_layer_unavailable": ("lost", "publish", "channel_layer_unavailable"),
    "layer_mismatch": ("lost", "deliver", "layer_mismatch"),
}
# hops that are right too: the chunks of a full channel are refused by group_send
# (publish) or dropped from the consumer's receive buffer (deliver), as timing decides
OTHER_HOPS: dict[str, tuple[str, ...]] = {"channel_full": ("deliver",)}
UNEXPECTED = ("?", None, "?")  # a fault of the app nobody told the analyzer about


@dataclass(frozen=True)
class ChatScenario:
    """One conversation to play and the verdict (outcome, hop, cause) it must get."""

    name: str
    expect: tuple[str, str | None, str]
    messages: tuple[str, ...] = ("hello",)
    token: str = "valid"  # a stack.TOKEN_KINDS kind
    client: Mapping[str, Any] = field(default_factory=dict)  # converse() keyword arguments
    worker_env: Mapping[str, str] = field(default_factory=dict)
    layer: str = "core"
    description: str = ""
    other_hops: tuple[str, ...] = ()

    def matches(self, outcome: str, hop: str | None, cause: str) -> bool:
        """Whether a verdict is the one this scenario must get."""
        want_outcome, want_hop, want_cause = self.expect
        return (outcome, cause) == (want_outcome, want_cause) and hop in (
            want_hop,
            *self.other_hops,
        )

    @property
    def stack_key(self) -> tuple:
        """Scenarios with the same key share one running stack."""
        return (self.layer, tuple(sorted(self.worker_env.items())))


def from_app(layer: str) -> tuple[ChatScenario, ...]:
    """The chat app's faults (``chatapp_faults.FAULTS``) on one channel layer."""
    out = []
    for cause, fault in FAULTS.items():
        if layer not in fault.layers:
            continue
        name = "healthy" if cause == "ok" else cause
        out.append(
            ChatScenario(
                name=name if layer == "core" else f"{name}@{layer}",
                expect=EXPECT.get(cause, UNEXPECTED),
                messages=tuple(fault.messages),
                token=fault.token,
                client=dict(fault.client),
                worker_env=dict(fault.worker_env),
                layer=layer,
                description=fault.description,
                other_hops=OTHER_HOPS.get(cause, ()),
            )
        )
    return tuple(out)


EXTRA: tuple[ChatScenario, ...] = (
    ChatScenario("healthy_two_messages", EXPECT["ok"], ("hello", "and another question"),
                 client={"gap": 0.3}, description="two questions on one connection, all delivered"),
    ChatScenario("auth_missing", EXPECT["auth_rejected"], token="none", client={"timeout": 5},
                 description="no token at all: accepted, then closed 4001"),
    ChatScenario("consumer_gone_then_back", EXPECT["consumer_gone"],
                 ("fault:consumer_gone", "are you still there?"),
                 client={"gap": 1.0, "settle": 0.5},
                 description="the answer streams to an empty group; the next one arrives whole"),
)  # fmt: skip

SCENARIOS: tuple[ChatScenario, ...] = from_app("core") + EXTRA
"""Every fault of the example app on the core layer, plus a few variations."""
PUBSUB_SCENARIOS: tuple[ChatScenario, ...] = from_app("pubsub")
"""The same faults on RedisPubSubChannelLayer (where the app supports them)."""
ALL_SCENARIOS: tuple[ChatScenario, ...] = SCENARIOS + PUBSUB_SCENARIOS

DEMO_SCENARIOS: tuple[str, ...] = (
    "healthy", "auth_rejected", "origin_rejected", "rate_limited", "no_worker", "task_failed",
    "client_disconnected", "consumer_gone", "consumer_error", "layer_mismatch",
)  # fmt: skip
"""What ``wsanalyze demo`` plays (a quick subset; the end-to-end tests play all)."""

# the failure ``wsanalyze demo`` shows in full: silent in every log, obvious in the traces
SHOWCASE: tuple[str, ...] = (
    "consumer_gone",
    "layer_mismatch",
    "client_disconnected",
    "task_failed",
)


@dataclass
class Played:
    """A scenario after it ran: its conversation id and what the client saw."""

    scenario: ChatScenario
    conversation_id: str
    transcript: Transcript | None = None
    error: str | None = None


Progress = Callable[[str], None]


def play(
    workdir: Path,
    scenarios: Sequence[ChatScenario] = SCENARIOS,
    *,
    trace_dir: Path | None = None,
    progress: Progress | None = None,
    redis: RedisServer | None = None,
) -> list[Played]:
    """Start Redis and the stacks the scenarios need, play them, stop everything (flushes traces).

    Every stack writes to ``trace_dir`` (default ``workdir/traces``).
    """
    say = progress or (lambda _text: None)
    workdir = Path(workdir)
    traces = Path(trace_dir) if trace_dir else workdir / "traces"
    traces.mkdir(parents=True, exist_ok=True)
    own_redis = redis is None
    server = redis or RedisServer()
    played: list[Played] = []
    stacks: dict[str, Stack] = {}
    try:
        if own_redis:
            say("starting Redis")
            server.start()
        needed = list(dict.fromkeys(s.stack_key for s in scenarios))
        for db, key in enumerate(needed, start=1):
            layer, env = key
            stacks[key] = Stack(
                workdir / f"stack-{db}", server.url_for(db), trace_dir=traces, layer=layer,
                worker_env=dict(env),
            ).launch()  # fmt: skip
        say(f"starting Daphne + Celery ({len(needed)} stack(s))")
        for stack in stacks.values():
            stack.wait_ready()
        for scenario in scenarios:
            say(f"conversation: {scenario.name}")
            played.append(_play_one(stacks[scenario.stack_key], scenario))
    finally:
        say("stopping the stack (flushing traces)")
        for stack in stacks.values():
            stack.stop()
        if own_redis:
            server.stop()
    return played


def _play_one(stack: Stack, scenario: ChatScenario) -> Played:
    slug = scenario.name.replace("_", "-").replace("@", "-")
    conversation_id = f"{slug}-{uuid.uuid4().hex[:6]}"
    url = stack.ws_url(conversation_id)
    try:
        transcript = _run(
            converse(
                url,
                list(scenario.messages),
                token=stack.token_of(scenario.token),
                **scenario.client,
            )
        )
    except Exception as exc:  # a client failure is reported, the demo goes on
        return Played(scenario, conversation_id, error=f"{type(exc).__name__}: {exc}")
    return Played(scenario, conversation_id, transcript)


def _run(coro: Any) -> Any:
    """asyncio.run, minus the noise of a sender task that died with a socket the server closed."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _context: None)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        gc.collect()  # finalize the dead sender task now, while our handler is still in place


def scenarios_named(names: Sequence[str]) -> list[ChatScenario]:
    """The scenarios of ``names``, in that order."""
    by_name = {s.name: s for s in ALL_SCENARIOS}
    return [by_name[name] for name in names]


def showcase(played: Sequence[Played]) -> Played | None:
    """The most interesting failure to show in full."""
    by_name = {p.scenario.name: p for p in played}
    for name in SHOWCASE:
        if name in by_name:
            return by_name[name]
    return next((p for p in played if p.scenario.expect[0] != "delivered"), None)


def run_demo(
    keep: Path | None = None,
    *,
    names: Sequence[str] = DEMO_SCENARIOS,
    room_names: Sequence[str] | None = None,
    console: Any = None,
) -> Path:
    """Play the demo scenarios, then print ``conversations`` and the showcase ``conversation``.

    Then the same for the room app (``room_names``; default
    ``room_scenarios.DEMO_ROOM_SCENARIOS``, ``()`` for none). Returns the chat app's trace
    directory (kept only when ``keep`` is given; the room app's stores are
    ``roomapp-<stack kind>/traces`` beside it).
    """
    import tempfile

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    out = console or Console()
    scenarios = scenarios_named(names)
    rooms = room_scenarios_named(DEMO_ROOM_SCENARIOS if room_names is None else room_names)
    with tempfile.TemporaryDirectory(prefix="wsanalyze-demo-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        traces = workdir / "traces"
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with RedisServer() as server, Progress(*columns, console=out, transient=True) as bar:
            steps = (len(scenarios) + 2 if scenarios else 0) + (3 if rooms else 0) + 1
            task = bar.add_task("starting Redis", total=steps)

            def step(text: str) -> None:
                bar.update(task, description=text, advance=1)

            played = play(workdir, scenarios, trace_dir=traces, progress=step, redis=server)
            room_played = play_rooms(workdir, rooms, redis=server, progress=step) if rooms else []
        if played:
            _show_chatapp(out, played, traces)
        if room_played:
            _show_roomapp(out, room_played)
        if keep:
            out.print(
                Text.assemble(
                    "\ntraces kept in ",
                    (shown(traces), "bold"),
                    ": try ",
                    (f"wsanalyze conversations --traces {shown(traces)}", "cyan"),
                )
            )
        else:
            out.print("\n[dim]run with --keep DIR to keep the traces and explore them[/]")
        return traces


def _show_chatapp(out: Any, played: Sequence[Played], traces: Path) -> None:
    """The chat app's conversations, then its showcase failure in full."""
    from ..analysis import conversation_list, conversation_report
    from ..render.terminal import conversation_view, conversations_view

    for p in played:
        if p.error:
            out.print(plain(f"{p.scenario.name}: client error {p.error}", "yellow"))
    rows, _ = conversation_list(traces=str(traces))
    order = {p.conversation_id: i for i, p in enumerate(played)}
    rows.sort(key=lambda r: order.get(r.conversation_id, len(order)))
    out.rule("[bold]wsanalyze conversations")
    out.print(conversations_view(rows))
    chosen = showcase(played)
    if chosen is not None:
        out.rule(plain(f"wsanalyze conversation {chosen.conversation_id}", "bold"))
        report = conversation_report(chosen.conversation_id, traces=str(traces))
        out.print(conversation_view(report, timeline_limit=40))


def _show_roomapp(out: Any, played: Sequence[RoomPlayed]) -> None:
    """The room app's conversations (one store per deployment), then the Stop one in full."""
    from ..analysis import conversation_list, conversation_report
    from ..render.terminal import conversation_view, conversations_view

    for p in played:
        if p.error:
            out.print(plain(f"{p.scenario.name}: client error {p.error}", "yellow"))
    order = {p.conversation_id: i for i, p in enumerate(played)}
    for trace_dir in dict.fromkeys(p.stack.trace_dir for p in played):
        rows, _ = conversation_list(traces=str(trace_dir))
        rows = sorted((r for r in rows if r.conversation_id in order),
                      key=lambda r: order[r.conversation_id])  # fmt: skip
        out.rule(plain(f"room app: wsanalyze conversations --traces {trace_dir}", "bold"))
        out.print(conversations_view(rows))
    chosen = next((p for p in played if p.scenario.name == "room_stop"), None)
    if chosen is not None:
        out.rule(plain(f"room app: wsanalyze conversation {chosen.conversation_id}", "bold"))
        report = conversation_report(chosen.conversation_id, traces=str(chosen.stack.trace_dir))
        out.print(conversation_view(report, timeline_limit=40))
