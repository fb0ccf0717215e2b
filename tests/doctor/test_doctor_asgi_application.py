"""A wrong ASGI_APPLICATION is named with the asgi module that works, and that module is checked."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack


def test_a_missing_asgi_application_module_names_the_project_asgi_module(doctor, project_env):
    env = {**project_env, "DOCTOR_ASGI_APPLICATION": "proj.routing.application"}
    checks, report = doctor(env, only=("asgi_router",))
    check = checks["asgi_router"]
    assert check["status"] == "warn"
    assert check["summary"] == (
        "ASGI_APPLICATION = 'proj.routing.application' cannot be imported: "
        "ModuleNotFoundError: No module named 'proj.routing'; proj.asgi.application works: "
        "set ASGI_APPLICATION = 'proj.asgi.application'"
    )
    assert report["ok"] is True


def test_a_missing_attribute_names_the_application_of_the_same_module(doctor, project_env):
    env = {**project_env, "DOCTOR_ASGI_APPLICATION": "proj.asgi.app"}
    checks, _ = doctor(env, only=("asgi_router",))
    summary = checks["asgi_router"]["summary"]
    assert summary.startswith("ASGI_APPLICATION = 'proj.asgi.app' cannot be imported: ")
    assert summary.endswith(
        "proj.asgi.application works: set ASGI_APPLICATION = 'proj.asgi.application'"
    )


def test_the_other_checks_run_against_the_asgi_module_that_works(doctor, project_env):
    env = {**project_env, "DOCTOR_ASGI_APPLICATION": "proj.asgi.app", "DOCTOR_ASGI": "auth_inside"}
    checks, _ = doctor(env, only=("asgi_router",))
    assert checks["asgi_router"]["status"] == "fail"
    assert "inside the URLRouter" in checks["asgi_router"]["summary"]
    assert "proj.asgi.application works" in checks["asgi_router"]["evidence"][0]
    env = {**env, "DOCTOR_ASGI": "no_origin"}
    checks, _ = doctor(env, only=("allowed_origins",))
    assert checks["allowed_origins"]["status"] == "warn"
    assert "CSWSH" in checks["allowed_origins"]["summary"]


def test_an_asgi_module_that_raises_with_no_alternative_fails_with_its_error(doctor, project_env):
    checks, report = doctor({**project_env, "DOCTOR_ASGI": "broken"}, only=("asgi_router",))
    check = checks["asgi_router"]
    assert check["status"] == "fail"
    assert (
        "'proj.asgi.application' cannot be imported: RuntimeError: DOCTOR_ASGI=broken"
        in (check["summary"])
    )
    assert report["ok"] is False
