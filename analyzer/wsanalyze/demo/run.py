"""``wsanalyze demo``: run the example app with faults on a real stack, then analyze what it wrote.

    played = play(workdir, SCENARIOS)            # starts Redis + stacks, talks, stops (flush)
    for p in played: print(p.scenario.name, p.conversation_id)

Each :class:`Scenario` is one conversation: the frames a client sends, how it
behaves, which stack serves it, and the verdict the analyzer must reach. The
end-to-end tests play the same list, so the demo shows exactly what is tested.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import Transcript, converse, make_token
from .stack import RedisServer, Stack, free_port

# stacks a scenario can ask for: name → Stack kwargs (worker_env etc.)
STACKS: dict[str, dict[str, Any]] = {
    "main": {},
    # the worker's channel layer points at a port nothing listens on
    "layer_down": {"worker_env": {"CHAT_LAYER_URL": "redis://127.0.0.1:{closed_port}/0"}},
    # the worker uses another key prefix than the web process
    "prefix": {"worker_env": {"CHAT_LAYER_PREFIX": "agents"}},
}


@dataclass(frozen=True)
class Scenario:
    """One conversation to play and the verdict (outcome, hop, cause) it must get."""

    name: str
    expect: tuple[str, str | None, str]
    messages: tuple[str, ...] = ("hello",)
    token: str = "valid"  # "valid" | "none" | "expired"
    stack: str = "main"
    client: dict[str, Any] = field(default_factory=dict)  # converse() keyword arguments
    description: str = ""
    other_hops: tuple[str, ...] = ()  # hops that are also right (timing decides which shows)

    def matches(self, outcome: str, hop: str | None, cause: str) -> bool:
        """Whether a verdict is the one this scenario must get."""
        want_outcome, want_hop, want_cause = self.expect
        hops = (want_hop, *self.other_hops)
        return (outcome, cause) == (want_outcome, want_cause) and hop in hops


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("healthy", ("delivered", "send", "ok"), ("hello", "and another question"),
             client={"gap": 0.3}, description="two questions, every chunk arrives"),
    Scenario("auth_rejected", ("rejected", "auth", "auth_rejected"), token="none",
             client={"timeout": 5}, description="no token: accepted, then closed 4001"),
    Scenario("auth_expired", ("rejected", "auth", "auth_rejected"), token="expired",
             client={"timeout": 5}, description="expired token: closed 4001"),
    Scenario("origin_rejected", ("rejected", "connect", "origin_rejected"),
             client={"origin": "https://evil.example", "timeout": 5},
             description="a browser origin that is not allowed: HTTP 403"),
    Scenario("rate_limited", ("lost", "receive", "rate_limited"), messages=("hi",) * 11,
             client={"timeout": 5}, description="a burst of 11 frames: closed 4004"),
    Scenario("invalid_message", ("lost", "receive", "invalid_message"), messages=(),
             client={"raw_frames": ["this is not json"], "timeout": 5},
             description="a frame that is not JSON: closed 4005"),
    Scenario("no_worker", ("lost", "task", "no_worker"), messages=("fault:no_worker please",),
             client={"timeout": 1.0}, description="task routed to a queue no worker consumes"),
    Scenario("task_failed", ("lost", "task", "task_failed"), messages=("fault:task_failed",),
             client={"settle": 0.5}, description="the agent raises after two chunks"),
    Scenario("client_disconnected", ("lost", "deliver", "client_disconnected"),
             messages=("fault:client_disconnected",), client={"close_after_chunks": 2},
             description="the client leaves after two chunks of a long answer"),
    Scenario("consumer_gone", ("lost", "deliver", "consumer_gone"),
             messages=("fault:consumer_gone", "are you still there?"),
             client={"gap": 1.0, "settle": 0.5},
             description="the consumer is not in the group while the answer streams"),
    Scenario("consumer_error", ("lost", "deliver", "consumer_error"),
             messages=("fault:consumer_error",), client={"timeout": 10},
             description="the consumer's chunk handler raises: close 1011"),
    Scenario("channel_full", ("lost", "publish", "channel_full"), messages=("fault:channel_full",),
             client={"settle": 0.5, "timeout": 20}, other_hops=("deliver",),
             description="300 chunks to a slow consumer: the channel overflows (refused by "
                         "group_send: publish; dropped from the consumer's buffer: deliver)"),
    Scenario("channel_layer_unavailable", ("lost", "publish", "channel_layer_unavailable"),
             stack="layer_down", client={"settle": 1.0},
             description="the worker's channel layer Redis refuses connections"),
    Scenario("layer_mismatch", ("lost", "deliver", "layer_mismatch"), stack="prefix",
             client={"settle": 1.0}, description="worker and web use different layer prefixes"),
)  # fmt: skip

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

    scenario: Scenario
    conversation_id: str
    transcript: Transcript | None = None
    error: str | None = None


Progress = Callable[[str], None]


def _token(stack: Stack, kind: str) -> str | None:
    if kind == "none":
        return None
    if kind == "expired":
        return stack.token(expired=True)
    if kind == "garbage":
        return make_token(1, "mallory", "not-the-server-secret-but-long-enough")
    return stack.token()


def _stack_kwargs(name: str, closed_port: int) -> dict[str, Any]:
    kwargs = {key: dict(value) for key, value in STACKS[name].items()}
    for env in kwargs.values():
        for key, value in env.items():
            env[key] = value.format(closed_port=closed_port)
    return kwargs


def play(
    workdir: Path,
    scenarios: Sequence[Scenario] = SCENARIOS,
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
        closed = free_port()
        needed = list(dict.fromkeys(s.stack for s in scenarios))
        for db, name in enumerate(needed, start=1):
            stacks[name] = Stack(
                workdir / f"stack-{name}", server.url_for(db), trace_dir=traces,
                **_stack_kwargs(name, closed),
            ).launch()  # fmt: skip
        say(f"starting Daphne + Celery ({', '.join(needed)})")
        for stack in stacks.values():
            stack.wait_ready()
        for scenario in scenarios:
            say(f"conversation: {scenario.name}")
            played.append(_play_one(stacks[scenario.stack], scenario))
    finally:
        say("stopping the stack (flushing traces)")
        for stack in stacks.values():
            stack.stop()
        if own_redis:
            server.stop()
    return played


def _play_one(stack: Stack, scenario: Scenario) -> Played:
    conversation_id = f"{scenario.name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    url = stack.ws_url(conversation_id)
    try:
        transcript = _run(
            converse(
                url, list(scenario.messages), token=_token(stack, scenario.token), **scenario.client
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


def scenarios_named(names: Sequence[str]) -> list[Scenario]:
    """The scenarios of ``names``, in that order."""
    by_name = {s.name: s for s in SCENARIOS}
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
    console: Any = None,
) -> Path:
    """Play the demo scenarios, then print ``conversations`` and the showcase ``conversation``.

    Returns the trace directory (kept only when ``keep`` is given).
    """
    import tempfile

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from ..render.terminal import conversation_view, conversations_view
    from ..verdicts.api import conversation_list, conversation_report

    out = console or Console()
    scenarios = scenarios_named(names)
    with tempfile.TemporaryDirectory(prefix="wsanalyze-demo-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        traces = workdir / "traces"
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with Progress(*columns, console=out, transient=True) as bar:
            task = bar.add_task("starting", total=len(scenarios) + 3)

            def step(text: str) -> None:
                bar.update(task, description=text, advance=1)

            played = play(workdir, scenarios, trace_dir=traces, progress=step)
        for p in played:
            if p.error:
                out.print(f"[yellow]{p.scenario.name}: client error {p.error}[/]")
        rows, _ = conversation_list(traces=str(traces))
        order = {p.conversation_id: i for i, p in enumerate(played)}
        rows.sort(key=lambda r: order.get(r.conversation_id, len(order)))
        out.rule("[bold]wsanalyze conversations")
        out.print(conversations_view(rows))
        chosen = showcase(played)
        if chosen is not None:
            out.rule(f"[bold]wsanalyze conversation {chosen.conversation_id}")
            report = conversation_report(chosen.conversation_id, traces=str(traces))
            out.print(conversation_view(report, timeline_limit=40))
        if keep:
            out.print(
                f"\ntraces kept in [bold]{traces}[/]: try "
                f"[cyan]wsanalyze conversations --traces {traces}[/]"
            )
        else:
            out.print("\n[dim]run with --keep DIR to keep the traces and explore them[/]")
        return traces
