"""The HTML report renders in headless Chromium without any network access."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner
from wsanalyze.cli import app

pytestmark = [pytest.mark.stack, pytest.mark.browser]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def chromium() -> str:
    found = os.environ.get("WSTRACE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        pytest.skip("no chromium (run .ci/setup-chromium.sh)")
    return found


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def html_report(e2e_run, tmp_path) -> Path:
    page = tmp_path / "consumer_gone.html"
    played = e2e_run.played["consumer_gone"]
    args = ["conversation", played.conversation_id, "--traces", str(e2e_run.trace_dir)]
    result = CliRunner().invoke(app, [*args, "--html", str(page), "--json"])
    assert result.exit_code == 0, result.output
    return page


def test_report_dom_after_scripts_ran(html_report, tmp_path):
    done = browse(html_report, tmp_path, "--dump-dom", "--virtual-time-budget=2000")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'data-ready="1"' in dom, "the inline script ran"
    assert 'id="swimlanes"' in dom and dom.count('class="lane"') >= 3
    assert 'class="lost-mark"' in dom
    assert 'data-cause="consumer_gone"' in dom


def test_report_screenshot(html_report, tmp_path):
    shot = tmp_path / "report.png"
    done = browse(html_report, tmp_path, f"--screenshot={shot}", "--window-size=1400,1000")
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    keep = os.environ.get("WSTRACE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report.png")
