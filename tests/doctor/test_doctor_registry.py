"""The doctor's checklist: registered in running order, statuses shared with the analyzer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from wstrace import doctor
from wstrace.doctor import registry, runner, status
from wstrace.doctor.redis_reachable import _redis_clients
from wstrace.doctor.registry import Item, Step


def test_the_checks_register_themselves_in_the_order_they_run() -> None:
    assert doctor.CHECK_NAMES == (
        "redis_reachable", "layer_roundtrip", "group_roundtrip", "asgi_router",
        "allowed_origins", "layer_not_in_memory", "celery_worker", "wstrace_active",
    )  # fmt: skip
    assert [step.run for step in registry.STEPS] == [
        doctor.check_redis_reachable,
        doctor.check_layer_roundtrips,
        doctor.check_asgi_router,
        doctor.check_allowed_origins,
        doctor.check_layer_not_in_memory,
        doctor.check_celery_worker,
        doctor.check_wstrace_active,
    ]
    # Only the write check sees wstrace as the app does; every other probe is quieted.
    assert [s.names for s in registry.STEPS if not s.quiet] == [("wstrace_active",)]


def test_the_analyzer_takes_its_statuses_from_wstrace() -> None:
    from wsanalyze import doctor as analyzer
    from wsanalyze.cli import doctor as cli

    assert (analyzer.PASS, analyzer.FAIL, analyzer.WARN, analyzer.SKIP) == status.STATUSES
    assert (doctor.PASS, doctor.FAIL, doctor.WARN, doctor.SKIP) == status.STATUSES
    assert set(cli._MARK) == set(status.STATUSES)


def test_importing_the_analyzers_doctor_loads_neither_django_nor_the_otel_sdk() -> None:
    code = (
        "import sys, wsanalyze.doctor, wsanalyze.cli.doctor; "
        "print([m for m in sys.modules if m.startswith(('django', 'opentelemetry.sdk'))])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("host", "label", "probed"),
    [
        ("redis://user:pw@cache:6380/2", "redis://user:***@cache:6380/2", True),
        ({"address": "redis://:pw@cache/1", "socket_timeout": 9}, "redis://:***@cache/1", True),
        (("cache", 6380), "cache:6380/0", True),
        ({"host": "cache", "port": 6380, "db": 3, "password": "pw"}, "cache:6380/3", True),
        ({"master_name": "main", "sentinels": [("s", 26379)]}, "sentinel:main", False),
    ],
)
def test_every_host_form_is_labelled_without_its_password(host, label, probed) -> None:
    [(found, factory)] = _redis_clients({"CONFIG": {"hosts": [host]}})
    assert found == label
    assert (factory is not None) is probed


def test_a_check_that_raises_fails_its_items_and_the_others_still_run(monkeypatch) -> None:
    def broken(opts: doctor.Options) -> doctor.Check:
        raise RuntimeError("boom")

    fine = Item("fine")
    steps = [
        Step(("first", "second"), broken, quiet=False),
        Step(("fine",), lambda opts: fine(status.PASS, "ok"), quiet=False),
    ]
    monkeypatch.setattr(runner, "STEPS", steps)
    report = runner.run_checks(doctor.Options(only=("second", "fine")))
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("second", "fail"),
        ("fine", "pass"),
    ]
    assert report["checks"][0]["summary"] == "the check itself failed: RuntimeError: boom"


def test_no_check_can_put_a_password_in_the_report(monkeypatch) -> None:
    def quoting(opts: doctor.Options) -> doctor.Check:
        raise ConnectionError("cannot reach redis://:Sup3rSecretPassw0rd@cache:6379/0")

    leaky = Item("leaky")
    steps = [
        Step(("raises",), quoting, quiet=False),
        Step(("leaky",), lambda opts: leaky(status.WARN, "JWTAuthMiddleware: reads a cookie",
                                            ["broker amqp://u:Sup3rSecretPassw0rd@mq//"]),
             quiet=False),
    ]  # fmt: skip
    monkeypatch.setattr(runner, "STEPS", steps)
    report = runner.run_checks(doctor.Options(only=("raises", "leaky")))
    assert len(report["checks"]) == 2
    assert "Sup3rSecretPassw0rd" not in repr(report)
    assert "cache:6379/0" in report["checks"][0]["summary"]  # where it failed stays readable
    assert report["checks"][1]["summary"] == "JWTAuthMiddleware: reads a cookie"  # prose is kept
