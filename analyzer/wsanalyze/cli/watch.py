"""``wsanalyze watch``: follow the trace store (and logs), print each message's verdict as it settles."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ..render.safe_text import ident, plain, shown
from ._common import (
    CloseCodes,
    InFlight,
    LogMapFile,
    Logs,
    check_traces,
    clean_errors,
    close_codes,
    console,
    err_console,
    in_flight,
    log_map,
    parse_time,
    seconds,
)

FollowedTraces = Annotated[
    str | None,
    typer.Option(
        "--traces",
        metavar="SOURCE",
        callback=check_traces,
        help="The OTLP JSON-lines directory (or file) to follow: new, grown and rotated files "
        "(default: $WSTRACE_DIR or ./.wstrace).",
    ),
]
PrintedSince = Annotated[
    str,
    typer.Option(
        "--since",
        help="The backlog: messages sent before this and already settled when the watch "
        "starts are not printed (ISO time or an age: 2h, 1d; 0s: only what settles from now on). "
        "Their evidence is still read.",
    ),
]
_STYLE = {"delivered": "green", "lost": "bold red", "rejected": "yellow", "unknown": "magenta"}


def watch(
    traces: FollowedTraces = None,
    logs: Logs = None,
    log_map_: LogMapFile = None,
    json_: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON object per settled message (JSON lines), for piping."
        ),
    ] = False,
    lost_only: Annotated[
        bool,
        typer.Option(
            "--lost-only",
            help="Print only lost messages (and a change of a message printed before).",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", help="How often to look for new evidence."),
    ] = 1.0,
    in_flight_s: InFlight = 5.0,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            metavar="SECONDS",
            help="Print a verdict once the message's evidence has been quiet this long "
            "(processes export about once a second).",
        ),
    ] = 2.0,
    since: PrintedSince = "10m",
    close_codes_: CloseCodes = None,
) -> None:
    """Follow the trace store (and logs) and print each message's verdict once it settles.

    A message settles when the verdict `conversation` gives stops being in_flight
    (delivered, lost or rejected; a message still waiting is lost once the in-flight
    horizon has passed) and its evidence has been quiet for --settle seconds. Each
    message is printed once, and again only if its verdict changes. Ctrl-C stops (exit 0).
    """
    from ..watch import Watcher

    seconds(interval, "--interval", zero=False)
    seconds(settle, "--settle")
    out = console()
    status_console = err_console() if json_ else out
    stop = threading.Event()
    with clean_errors(), log_map(log_map_), _stopping_on_signals(stop):
        watcher = Watcher(
            traces,
            logs,
            in_flight=in_flight(in_flight_s),
            settle=timedelta(seconds=settle),
            close_codes=close_codes(close_codes_),
            since=parse_time(since, "--since"),
        )
        try:
            _follow(watcher, stop, interval, json_, lost_only, out, status_console)
        except BrokenPipeError:  # `wsanalyze watch --json | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        finally:
            watcher.close()
    if not json_:
        out.print(_summary_line(watcher), soft_wrap=True)


def _follow(watcher, stop, interval, json_, lost_only, out: Console, status_console: Console):
    """Tick until stopped: the first tick with a progress bar, then a status line."""
    with _first_read_progress(status_console) as progress:
        tick = watcher.tick(progress=progress)
    _print_tick(tick, json_, lost_only, out)
    live = status_console.is_terminal
    with status_console.status(_status(watcher, tick)) if live else nullcontext() as status:
        while not stop.wait(interval):
            tick = watcher.tick()
            _print_tick(tick, json_, lost_only, out)
            if status is not None:
                status.update(_status(watcher, tick))


def _print_tick(tick, json_: bool, lost_only: bool, out: Console) -> None:
    for settled in tick.settled:
        if lost_only and settled.message.outcome != "lost" and not settled.changed:
            continue
        if json_:
            sys.stdout.write(json.dumps(_json(settled), ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        else:
            out.print(_line(settled), soft_wrap=True)
    if tick.problems:
        err = err_console()
        for line in tick.problems[:20]:
            err.print(Text.assemble(("input problem:", "yellow"), " ", shown(line)), soft_wrap=True)
        if len(tick.problems) > 20:
            err.print(plain(f"… and {len(tick.problems) - 20} more input problems", "yellow"))


def _json(settled) -> dict:
    """One JSON line: the ids, the verdict, and ``conversation --json``'s message fields."""
    from ..render.json import iso, message_dict

    m = settled.message
    head = {
        "conversation_id": settled.conversation_id,
        "message_id": m.message_id,
        "outcome": m.outcome,
        "hop": m.hop,
        "cause": m.cause,
        "confidence": m.confidence,
        "summary": m.summary,
    }
    tail = {
        "first_ts": iso(m.first_ts),
        "at": iso(settled.at),
        "changed": settled.changed,
        "previous": (
            dict(zip(("outcome", "hop", "cause"), settled.previous, strict=True))
            if settled.previous
            else None
        ),
    }
    return {**head, **message_dict(m), **tail}


def _line(settled) -> Text:
    """One terminal line: when the message was sent, its ids, its verdict coloured by outcome."""
    m = settled.message
    line = Text()
    stamp = m.first_ts.astimezone().strftime("%H:%M:%S") if m.first_ts else "--:--:--"
    line.append(f"{stamp}  ", style="dim")
    line.append(f"{ident(settled.conversation_id)} · {ident(m.message_id)}  ")
    line.append(
        shown(m.summary or f"{m.outcome} at {m.hop or '-'}: {m.cause}"),
        style=_STYLE.get(m.outcome, ""),
    )
    if m.confidence and m.confidence != "exact":
        line.append(f"  confidence={shown(m.confidence)}", style="dim")
    if settled.previous is not None:
        outcome, hop, cause = settled.previous
        line.append(shown(f"  (changed: was {outcome} at {hop or '-'}: {cause})"), style="bold")
    return line


def _status(watcher, tick) -> Text:
    counts = watcher.counts()
    return plain(
        f"watching {watcher.source}: {sum(counts.values())} message(s), "
        f"{counts['in_flight']} waiting · last tick {tick.seconds * 1000:.0f} ms"
    )


def _summary_line(watcher) -> Text:
    """What was seen, on one line: printed when the watch stops."""
    counts = watcher.counts()
    waiting = counts.pop("in_flight", 0)
    minutes, seconds = divmod(int(time.monotonic() - watcher.started), 60)
    took = f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    done = sum(counts.values())
    text = Text(f"watched {took}: {done} message(s) settled", style="bold")
    if done:
        text.append(shown(" (" + ", ".join(f"{n} {o}" for o, n in counts.most_common()) + ")"))
    top = watcher.top_lost()
    if top is not None:
        cause, hop, count = top
        text.append(shown(f"; top cause {cause} at {hop or '-'} ({count})"), style="red")
    text.append(f"; {waiting} still waiting")
    return text


@contextmanager
def _first_read_progress(target: Console) -> Iterator:
    """A progress bar over the first tick: reading the store, then judging its conversations."""
    if not target.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
        console=target, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("reading the store", total=None, detail="")

        def update(what: str, done: int, total: int) -> None:
            if what == "read":
                text, detail = "reading the store", f"{done / 1e6:.1f} of {total / 1e6:.1f} MB"
            else:
                text, detail = "judging conversations", f"{done} of {total}"
            bar.update(task, description=text, completed=done, total=total or None, detail=detail)

        yield update


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM end the watch after the current tick (a second Ctrl-C at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
