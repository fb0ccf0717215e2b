"""The checklist: every check registers itself here, in the order the checks run.

A check is a function ``(Options) -> Check`` (or a list of Checks, when one probe answers
several items), decorated with ``@register(ITEM, ...)`` where each ``ITEM = Item(name)``
is one line of the checklist. ``Item`` also makes that line's answers, so a check module
spells each check name once. The runner iterates ``STEPS``; ``wstrace.doctor`` imports the
check modules in running order, which is what fills it in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar


@dataclass
class Check:
    """One answer of the checklist."""

    name: str
    status: str
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: str | None = None


@dataclass
class Options:
    timeout: float = 5.0
    celery_app: str | None = None
    processes: int | None = None  # how many processes share the layer, when the user knows
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    """One line of the checklist: its name, and the maker of its answers."""

    name: str

    def __call__(
        self, status: str, summary: str, evidence: list[str] | None = None, fix: str | None = None
    ) -> Check:
        # The evidence list is kept, not copied: a check may hand the same list to the
        # answer it returns and to the caller that goes on adding to it.
        return Check(self.name, status, summary, [] if evidence is None else evidence, fix)


Result = Check | list[Check]
Run = Callable[["Options"], Result]
R = TypeVar("R", bound=Run)


@dataclass(frozen=True)
class Step:
    """A registered check: the items it answers and how it runs."""

    names: tuple[str, ...]
    run: Run
    quiet: bool  # probes run with wstrace and OpenTelemetry instrumentations suppressed


STEPS: list[Step] = []


def register(*items: Item, quiet: bool = True) -> Callable[[R], R]:
    """Add a check answering ``items`` to the end of the checklist.

    ``quiet=False`` for a check that must see wstrace as the app does (it records a span
    on purpose); every other check's probes are no evidence of the app.
    """

    def add(run: R) -> R:
        STEPS.append(Step(tuple(item.name for item in items), run, quiet))
        return run

    return add


def check_names() -> tuple[str, ...]:
    """Every item's name, in running order."""
    return tuple(name for step in STEPS for name in step.names)
