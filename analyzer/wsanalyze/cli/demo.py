"""``wsanalyze demo``: the example app on an embedded Redis, with faults, then the analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import clean_errors, console, fail


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
    """Run the example chat app (Daphne + Celery + embedded Redis) with faults, then analyze it."""
    try:
        from ..demo.run import ALL_SCENARIOS, DEMO_SCENARIOS, run_demo
    except ImportError as exc:
        fail(
            f"the demo needs the [demo] extra ({exc.name} is missing): pip install 'wstrace[demo]'"
        )
    known = [s.name for s in ALL_SCENARIOS]
    unknown = [name for name in scenario or [] if name not in known]
    if unknown:
        fail(f"unknown scenario {unknown[0]!r}; scenarios: {', '.join(known)}")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with clean_errors():
        run_demo(keep, names=scenario or DEMO_SCENARIOS, console=console())
