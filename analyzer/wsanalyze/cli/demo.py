"""``wsanalyze demo``: the example app on an embedded Redis, with faults, then the analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import clean_errors, console, fail, quoted


def demo(
    keep: Annotated[
        Path | None,
        typer.Option("--keep", metavar="DIR", help="Keep the run (traces, logs) in DIR."),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", help="Play only these scenarios (repeatable)."),
    ] = None,
) -> None:
    """Run the example apps (Daphne + Celery + embedded Redis) with faults, then analyze them.

    The chat app's scenarios first, then the room app's (group rooms, bots, Stop,
    HTTP posts); ``--scenario`` picks from either.
    """
    try:
        from ..demo.room_scenarios import DEMO_ROOM_SCENARIOS, ROOM_SCENARIOS
        from ..demo.run import ALL_SCENARIOS, DEMO_SCENARIOS, run_demo
    except ImportError as exc:
        fail(
            f"the demo needs the [demo] extra ({exc.name} is missing): pip install 'wstrace[demo]'"
        )
    chat_names = [s.name for s in ALL_SCENARIOS]
    room_names = [s.name for s in ROOM_SCENARIOS]
    unknown = [name for name in scenario or [] if name not in chat_names + room_names]
    if unknown:
        known = ", ".join(chat_names + room_names)
        fail(f"unknown scenario {quoted(unknown[0])}; scenarios: {known}")
    if keep is not None:
        # The apps run in their own directories: a relative --keep would land in theirs.
        try:
            keep = keep.expanduser().absolute()
            keep.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL; ~nobody (no such home)
            fail(f"--keep: cannot make the directory {quoted(str(keep))}: {_reason(exc)}")
    chat = [name for name in scenario or [] if name in chat_names]
    rooms = [name for name in scenario or [] if name in room_names]
    with clean_errors():
        run_demo(
            keep,
            names=chat if scenario else DEMO_SCENARIOS,
            room_names=rooms if scenario else DEMO_ROOM_SCENARIOS,
            console=console(),
        )


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
