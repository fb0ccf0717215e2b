"""One small rule per cause; every module here defines ``RULES`` and is picked up.

A new cause is one new module with a ``RULES`` tuple of :class:`Rule`; the
priority decides where it sits among the others (lower is tried first).
"""

from __future__ import annotations

import importlib
import pkgutil

from ._base import Rule


def load_rules() -> tuple[Rule, ...]:
    """Every rule of every module in this package, in priority order."""
    rules: list[Rule] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rules.extend(module.RULES)  # every rule module defines RULES: one missing is a bug
    return tuple(sorted(rules, key=lambda rule: (rule.priority, rule.name)))


RULES: tuple[Rule, ...] = load_rules()

__all__ = ["RULES", "Rule", "load_rules"]
