"""A report of ``run_checks`` as ``manage.py wstrace doctor`` prints it: a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .status import FAIL, PASS, SKIP, WARN

# A skip is quiet on purpose: the check did not apply, nothing to look at.
_MARKS = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", SKIP: "skip"}


def render_text(report: dict[str, Any]) -> Iterable[str]:
    """One line per check, its evidence indented under it, a fix for a failure or warning."""
    for check in report["checks"]:
        yield f"[{_MARKS.get(check['status'], check['status'])}] {check['name']}: {check['summary']}"
        for line in check["evidence"]:
            yield f"       {line}"
        if check["status"] in (FAIL, WARN) and check.get("fix"):
            yield f"       fix: {check['fix']}"


def to_json(report: dict[str, Any]) -> str:
    """What ``wsanalyze doctor`` reads."""
    return json.dumps(report, indent=2, default=str)
