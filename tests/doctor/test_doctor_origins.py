"""The origin check judges cross-site WebSocket hijacking by how the websocket route authenticates."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack


def test_session_cookie_auth_without_an_origin_validator_warns_of_cswsh(doctor, project_env):
    checks, report = doctor({**project_env, "DOCTOR_ASGI": "no_origin"}, only=("allowed_origins",))
    check = checks["allowed_origins"]
    assert check["status"] == "warn"
    assert "CSWSH" in check["summary"] and "cookies" in check["summary"]
    assert "AllowedHostsOriginValidator(AuthMiddlewareStack(" in check["fix"]
    assert any("session cookie" in line for line in check["evidence"])
    assert report["ok"] is True


def test_a_jwt_read_from_a_cookie_without_an_origin_validator_warns(doctor, project_env):
    checks, _ = doctor({**project_env, "DOCTOR_ASGI": "cookie_jwt"}, only=("allowed_origins",))
    check = checks["allowed_origins"]
    assert check["status"] == "warn" and "CSWSH" in check["summary"]
    assert "proj.cookie_auth.JWTCookieAuthMiddleware: reads a cookie" in check["evidence"]


@pytest.mark.parametrize(
    ("shape", "place"),
    [
        ("token_query", "the query string"),
        ("token_header", "an Authorization header"),
        ("token_subprotocol", "the Sec-WebSocket-Protocol header"),
    ],
)
def test_token_auth_without_an_origin_validator_passes_and_says_why(
    doctor, project_env, shape, place
):
    checks, report = doctor({**project_env, "DOCTOR_ASGI": shape}, only=("allowed_origins",))
    check = checks["allowed_origins"]
    assert check["status"] == "pass", check
    assert "by token" in check["summary"] and "needs cookie auth" in check["summary"]
    assert any(line.endswith(f"token from {place}") for line in check["evidence"]), check
    assert report["ok"] is True
