"""Every doctor check against a real misconfiguration of a real project (Redis, Celery, Django)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.doctor.conftest import PROJ

pytestmark = pytest.mark.stack


def test_a_healthy_project_passes_every_check(doctor, project_env, start_worker):
    start_worker(project_env)
    checks, report = doctor(project_env, worker_env={})
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(
        [
            "redis_reachable", "layer_roundtrip", "group_roundtrip", "asgi_router",
            "allowed_origins", "layer_not_in_memory", "celery_worker", "wstrace_active",
            "layer_identity",
        ],
        "pass",
    )  # fmt: skip
    assert report["ok"] is True
    assert any("PONG" in line for line in checks["redis_reachable"]["evidence"])
    assert any("celery" in line for line in checks["celery_worker"]["evidence"])


def test_redis_down_fails_reachability_and_both_round_trips(doctor, project_env):
    env = {**project_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    only = ("redis_reachable", "layer_roundtrip", "group_roundtrip")
    checks, report = doctor(env, only=only)
    assert [checks[n]["status"] for n in only] == ["fail"] * 3
    assert "127.0.0.1:1" in checks["redis_reachable"]["summary"]
    assert "Connection refused" in " ".join(checks["redis_reachable"]["evidence"])
    assert checks["redis_reachable"]["fix"] and report["ok"] is False


def test_in_memory_layer_with_a_celery_worker_fails(doctor, project_env):
    checks, _ = doctor({**project_env, "DOCTOR_LAYER": "memory"}, only=("layer_not_in_memory",))
    check = checks["layer_not_in_memory"]
    assert check["status"] == "fail"
    assert "InMemoryChannelLayer" in " ".join(check["evidence"])


def test_auth_middleware_inside_the_router_fails(doctor, project_env):
    checks, _ = doctor({**project_env, "DOCTOR_ASGI": "auth_inside"}, only=("asgi_router",))
    check = checks["asgi_router"]
    assert check["status"] == "fail" and "inside the URLRouter" in check["summary"]
    assert "AuthMiddlewareStack(URLRouter" in check["fix"]


def test_an_app_that_is_not_a_protocol_type_router_fails(doctor, project_env):
    checks, _ = doctor({**project_env, "DOCTOR_ASGI": "not_router"}, only=("asgi_router",))
    assert checks["asgi_router"]["status"] == "fail"
    assert "not a ProtocolTypeRouter" in checks["asgi_router"]["summary"]


def test_origins_not_configured_fail_and_any_origin_warns(doctor, project_env):
    checks, _ = doctor({**project_env, "DOCTOR_ALLOWED_HOSTS": ""}, only=("allowed_origins",))
    assert checks["allowed_origins"]["status"] == "fail"
    assert "allows no origin" in checks["allowed_origins"]["summary"]
    checks, _ = doctor({**project_env, "DOCTOR_ALLOWED_HOSTS": "*"}, only=("allowed_origins",))
    assert checks["allowed_origins"]["status"] == "warn"


def test_no_worker_running_fails(doctor, project_env):
    checks, _ = doctor(project_env, only=("celery_worker",))
    check = checks["celery_worker"]
    assert check["status"] == "fail" and "no Celery worker answered" in check["summary"]
    assert "celery -A proj worker" in check["fix"]


def test_a_task_routed_to_a_queue_no_worker_consumes_fails(doctor, project_env, start_worker):
    start_worker(project_env, queues="celery")
    env = {**project_env, "DOCTOR_AGENT_QUEUE": "agents"}
    checks, _ = doctor(env, only=("celery_worker",))
    check = checks["celery_worker"]
    assert check["status"] == "fail"
    assert "queue 'agents'" in check["summary"] and "proj.tasks.agent" in check["summary"]


def test_wstrace_disabled_or_not_installed_fails(doctor, project_env):
    checks, _ = doctor({**project_env, "WSTRACE_ENABLED": "0"}, only=("wstrace_active",))
    assert checks["wstrace_active"]["status"] == "fail"
    assert "disabled" in checks["wstrace_active"]["summary"]
    checks, _ = doctor({**project_env, "DOCTOR_NO_WSTRACE": "1"})
    assert checks["wstrace_active"]["status"] == "fail"
    assert "INSTALLED_APPS" in checks["wstrace_active"]["summary"]


def test_wstrace_writing_is_proved_by_a_span_that_reached_the_store(doctor, project_env):
    """The span reached a file of the store (then left it: see test_doctor_probe_spans)."""
    checks, _ = doctor(project_env, only=("wstrace_active",))
    assert checks["wstrace_active"]["status"] == "pass"
    reached = checks["wstrace_active"]["evidence"][-1]
    assert reached.startswith("a test span reached web-") and ".jsonl" in reached


def test_web_and_worker_with_different_layer_prefixes_fail_layer_identity(doctor, project_env):
    checks, _ = doctor(project_env, only=("layer_identity",), worker_env={"DOCTOR_PREFIX": "other"})
    check = checks["layer_identity"]
    assert check["status"] == "fail" and "layer_mismatch" in check["summary"]
    assert any("prefix=asgi" in e for e in check["evidence"])
    assert any("prefix=other" in e for e in check["evidence"])
    checks, _ = doctor(project_env, only=("layer_identity",), worker_env={})
    assert checks["layer_identity"]["status"] == "pass"


def test_the_cli_prints_json_and_exits_non_zero_on_a_failure(project_env):
    def cli(env, *args):
        argv = [sys.executable, "-m", "wsanalyze.cli", "doctor", "--app-dir", str(PROJ), "--json",
                "--timeout", "2", *args]  # fmt: skip
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    ok = cli(project_env, "--only", "redis_reachable")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True and [c["name"] for c in report["checks"]] == ["redis_reachable"]
    bad = cli({**project_env, "REDIS_URL": "redis://127.0.0.1:1/0"}, "--only", "redis_reachable")
    assert bad.returncode == 1 and json.loads(bad.stdout)["checks"][0]["status"] == "fail"


def _wait_for_worker_ready(store, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("worker_ready" in p.read_text() for p in store.glob("*.jsonl")):
            return
        time.sleep(0.2)
    pytest.fail(f"no worker_ready span in {store}")


@pytest.mark.parametrize(("worker_prefix", "expected"), [("asgi", "pass"), ("other", "fail")])
def test_layer_identity_from_the_workers_own_worker_ready_span(
    doctor, project_env, start_worker, tmp_path, worker_prefix, expected
):
    """No --worker-env: the worker's identity comes from the span wstrace wrote when it started."""
    store = tmp_path / "wstrace"
    start_worker({**project_env, "DOCTOR_PREFIX": worker_prefix, "WSTRACE_SERVICE": "worker"})
    _wait_for_worker_ready(store)
    checks, _ = doctor(project_env, only=("layer_identity",), traces=str(store))
    check = checks["layer_identity"]
    assert check["status"] == expected, check
    assert any("worker_ready" in line for line in check["evidence"])


@pytest.mark.parametrize("form", ["dict", "pair"])
def test_every_host_form_channels_redis_accepts_is_checked(doctor, project_env, form):
    checks, _ = doctor({**project_env, "DOCTOR_HOSTS_FORM": form}, only=("redis_reachable",))
    assert checks["redis_reachable"]["status"] == "pass", checks["redis_reachable"]


def test_outside_a_django_project_the_doctor_says_where_it_looked(tmp_path, monkeypatch):
    from wsanalyze.doctor import DoctorError, Target, run_doctor

    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    with pytest.raises(DoctorError, match=r"no manage\.py"):
        run_doctor(Target(app_dir=tmp_path))


def test_a_project_that_does_not_start_is_one_failing_check(doctor, project_env):
    checks, report = doctor({**project_env, "DJANGO_SETTINGS_MODULE": "proj.no_such_settings"})
    assert "django_project" in checks
    assert checks["django_project"]["status"] == "fail"
    assert "no_such_settings" in " ".join(checks["django_project"]["evidence"])
    assert report["ok"] is False
