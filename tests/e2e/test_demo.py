"""``wsanalyze demo`` (the README's first command) runs and shows verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack


def test_demo_plays_scenarios_and_prints_the_analysis(tmp_path):
    keep = tmp_path / "run [bold]kept"  # a path is data: printed as is, never rich markup
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "wsanalyze.cli", "demo", "--keep", str(keep),
         "--scenario", "healthy", "--scenario", "consumer_gone", "--scenario", "auth_rejected"],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "wsanalyze conversations" in out and "wsanalyze conversation " in out
    assert "consumer_gone" in out and "auth_rejected" in out and "delivered" in out
    assert "fix:" in out
    assert any(Path(keep, "traces").glob("*.jsonl"))
    assert f"traces kept in {keep}" in out.replace("\n", "")
