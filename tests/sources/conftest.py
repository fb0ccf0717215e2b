"""Fixtures for the source tests: the real ``wsanalyze`` command with its peak memory.

``wsanalyze(*args, timeout=60)`` runs the command line in a fresh process (no
compacted store unless the test makes one) and returns a ``Run``: exit code,
output, seconds, and the peak resident memory of the process and its workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

# Runs the command, then prints its children's peak RSS (Linux: KiB) as the last line.
_MEASURED = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'\\n{peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass
class Run:
    """One finished ``wsanalyze`` process."""

    code: int
    out: str
    err: str
    peak_mib: float

    @property
    def json(self) -> object:
        return json.loads(self.out)


def _command() -> list[str]:
    script = Path(sys.executable).with_name("wsanalyze")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wsanalyze.cli"]


@pytest.fixture
def wsanalyze(tmp_path: Path) -> Callable[..., Run]:
    """Run ``wsanalyze ARGS`` in a subprocess (killed after ``timeout`` seconds: a hang fails)."""

    def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Run:
        environment = {
            **os.environ,
            "WSANALYZE_STORE": str(tmp_path / "no-store"),
            "COLUMNS": "400",
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, *_command(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            cwd=tmp_path,
        )
        err, _, peak = done.stderr.rstrip("\n").rpartition("\n")
        return Run(done.returncode, done.stdout, err, int(peak) / 1024)

    return run
