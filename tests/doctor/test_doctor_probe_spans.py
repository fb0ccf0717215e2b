"""The doctor's own probes leave nothing in the user's store (WSTRACE FILE_DIR)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doctor.conftest import PROJ, _base_env

pytestmark = pytest.mark.stack

APP_LINE = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "app.span"}]}]}]})


def snapshot(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.iterdir())}


def test_running_the_doctor_twice_adds_no_span_lines_to_the_store(doctor, project_env):
    store = Path(project_env["WSTRACE_DIR"])
    store.mkdir(parents=True)
    (store / "web-apphost-1-20250101T000000.0.jsonl").write_text(APP_LINE + "\n")
    before = snapshot(store)
    for _ in range(2):
        checks, _ = doctor(project_env, worker_env={})
        probes = ("layer_roundtrip", "group_roundtrip", "wstrace_active")
        assert [checks[n]["status"] for n in probes] == ["pass"] * 3, checks
        assert "removed from it again" in checks["wstrace_active"]["evidence"][-1]
    assert snapshot(store) == before


def test_a_store_nothing_can_be_written_to_fails_the_write_check(doctor, project_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**project_env, "WSTRACE_DIR": str(blocker / "wstrace")}
    checks, _ = doctor(env, only=("wstrace_active",))
    assert checks["wstrace_active"]["status"] == "fail"
    assert "nothing reached its store" in checks["wstrace_active"]["summary"]


SPAN_AFTER_THE_DOCTOR = """
import django
django.setup()
from wstrace import doctor, provider, runtime
report = doctor.run_checks(doctor.Options(only=("layer_roundtrip", "wstrace_active")))
assert [c["status"] for c in report["checks"]] == ["pass", "pass"], report
with runtime.tracer().start_as_current_span("app.after_doctor"):
    pass
provider.flush(5000)
"""


def test_spans_the_app_records_after_the_doctor_still_reach_the_store(project_env):
    """The doctor run inside a living process: its probe is gone, the app's next span is kept."""
    env = {**_base_env(), **project_env}
    run = subprocess.run([sys.executable, "-c", SPAN_AFTER_THE_DOCTOR], cwd=PROJ, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    text = "".join(p.read_text() for p in Path(project_env["WSTRACE_DIR"]).glob("*.jsonl"))
    assert "app.after_doctor" in text
    assert "wstrace.doctor" not in text and "ws.publish" not in text
