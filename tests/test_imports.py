"""Importing the analyzer loads neither Django nor the OpenTelemetry SDK.

``wsanalyze`` runs where the app does not (a laptop, a CI job reading a trace
store): its import must not pull the app side's heavy packages. Checked in a fresh
interpreter, so nothing another test imported can hide a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("django", "opentelemetry.sdk")


def modules_after_importing(module: str) -> list[str]:
    """Every module a fresh interpreter has loaded once ``module`` is imported."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", ["wsanalyze", "wsanalyze.cli"])
def test_importing_the_analyzer_loads_neither_django_nor_the_otel_sdk(module: str) -> None:
    loaded = modules_after_importing(module)

    assert module in loaded
    heavy = [name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
