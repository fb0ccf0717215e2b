"""The doctor against the real example app running on Daphne + a Celery prefork worker."""

from __future__ import annotations

import pytest
from wsanalyze.doctor import Target, run_doctor

pytestmark = pytest.mark.stack


def test_the_example_app_passes_every_check(shared_stack):
    stack = shared_stack(layer="core", wstrace_enabled=True)
    target = Target(app_dir=stack.app_dir, env=stack.process_env("web"), timeout=3.0)
    report = run_doctor(target, traces=str(stack.trace_dir))
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == dict.fromkeys(statuses, "pass"), report["checks"]
    assert len(statuses) == 9
    worker = next(c for c in report["checks"] if c["name"] == "celery_worker")
    assert any(stack.worker_name in line for line in worker["evidence"])
