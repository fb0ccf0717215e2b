"""WSTRACE settings and WSTRACE_* variables become one validated config, or one clear error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wsanalyze.demo.example_apps import example_app_dir
from wstrace import conventions as c
from wstrace.config import ConfigError, load_config

NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"ENABLED": "yes"}, "ENABLED"),
        ({"FILE_DIR": 5}, "FILE_DIR"),
        ({"EXPORTERS": ["file", "jaeger"]}, "EXPORTERS"),
        ({"EXPORTERS": 3}, "EXPORTERS"),
        ({"CONVERSATION_KWARG": ""}, "CONVERSATION_KWARG"),
        ({"CONVERSATION_PATTERN": "(unclosed"}, "CONVERSATION_PATTERN"),
        ({"CONVERSATION_PATTERN": r"/(?P<room>\w+)/$"}, "CONVERSATION_PATTERN"),
        ({"MESSAGE_ID_FIELD": 7}, "MESSAGE_ID_FIELD"),
        ({"CLOSE_CODES": [4010]}, "CLOSE_CODES"),
        ({"CLOSE_CODES": {4010: "auth_rejected"}}, "CLOSE_CODES"),
        ({"CLOSE_CODES": {"abc": ("auth_rejected", "auth")}}, "CLOSE_CODES"),
        ({"CLOSE_CODES": {4010: ("auth_rejected", "lobby")}}, "CLOSE_CODES"),
        ({"RECORD_BODIES": 1}, "RECORD_BODIES"),
        ({"TRUST_CLIENT_CONTEXT": "false"}, "TRUST_CLIENT_CONTEXT"),
        ({"REDACT_PARAMS": "session"}, "REDACT_PARAMS"),
        ({"FILE_MAX_BYTES": 0}, "FILE_MAX_BYTES"),
        ({"FILE_MAX_BYTES": "64MB"}, "FILE_MAX_BYTES"),
        ({"FILE_MAX_BYTES": True}, "FILE_MAX_BYTES"),
        ({"QUEUE_SIZE": -1}, "QUEUE_SIZE"),
        ({"FLUSH_INTERVAL_MS": 0.5}, "FLUSH_INTERVAL_MS"),
        ({"FILE_DIRS": "/tmp"}, "FILE_DIRS"),
        ({"CONVERSATION_RESOLVER": "resolve_conversation"}, "CONVERSATION_RESOLVER"),
        ({"CONVERSATION_RESOLVER": "myapp.ws:resolve"}, "CONVERSATION_RESOLVER"),
        ({"CONVERSATION_RESOLVER": 5}, "CONVERSATION_RESOLVER"),
        ({"APP_ID_FIELDS": "id"}, "APP_ID_FIELDS"),
        ({"APP_ID_FIELDS": ["id", ""]}, "APP_ID_FIELDS"),
        ({"APP_ID_FIELDS": ["id", 3]}, "APP_ID_FIELDS"),
        ({"FRAME_TYPE_FIELD": ""}, "FRAME_TYPE_FIELD"),
        ({"FRAME_TYPE_FIELD": ["type"]}, "FRAME_TYPE_FIELD"),
        ({"ANSWERED_TYPES": "message"}, "ANSWERED_TYPES"),
        ({"ANSWERED_TYPES": [None]}, "ANSWERED_TYPES"),
        ({"HTTP_REQUESTS": "yes"}, "HTTP_REQUESTS"),
    ],
)
def test_a_bad_value_raises_config_error_naming_the_key(settings, key):
    with pytest.raises(ConfigError, match=key) as raised:
        load_config(settings, NO_ENV)
    assert "\n" not in str(raised.value)  # one line, for manage.py check and the log


@pytest.mark.parametrize("settings", ["file", 5, [("ENABLED", True)], ("a", "b")])
def test_wstrace_that_is_not_a_dict_raises_config_error(settings):
    with pytest.raises(ConfigError, match="WSTRACE must be a dict"):
        load_config(settings, NO_ENV)


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"WSTRACE_EXPORTERS": "file,zipkin"}, "WSTRACE_EXPORTERS"),
        ({"OTEL_BSP_SCHEDULE_DELAY": "soon"}, "OTEL_BSP_SCHEDULE_DELAY"),
    ],
)
def test_a_bad_environment_variable_raises_config_error_naming_it(environ, name):
    with pytest.raises(ConfigError, match=name):
        load_config({}, environ)


def test_defaults_without_settings_or_environment():
    config = load_config(None, NO_ENV)

    assert config.enabled is True
    assert config.service_name == "django"
    assert config.file_dir == Path(".wstrace")
    assert config.exporters == ("file",)
    assert config.record_bodies is False
    assert config.trust_client_context is False
    assert config.flush_interval_ms == 1000
    assert dict(config.close_codes) == dict(c.DEFAULT_CLOSE_CODES)
    # A conversation comes from routing unless the user says otherwise (issue 10).
    assert config.conversation_pattern is None
    assert config.conversation_resolver is None
    assert config.app_id_fields == ("id", "message_id", "client_id", "uuid")
    assert config.frame_type_field == "type"
    assert config.answered_types is None
    assert config.http_requests is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off", " 0 "])
def test_wstrace_enabled_0_turns_everything_off(value):
    assert load_config({"ENABLED": True}, {"WSTRACE_ENABLED": value}).enabled is False


@pytest.mark.parametrize("value", ["1", "true", "yes", ""])
def test_wstrace_enabled_other_values_leave_it_on(value):
    assert load_config({}, {"WSTRACE_ENABLED": value}).enabled is True


def test_enabled_false_in_settings_turns_it_off_even_when_the_environment_says_1():
    assert load_config({"ENABLED": False}, {"WSTRACE_ENABLED": "1"}).enabled is False


def test_environment_overrides_dir_service_and_exporters():
    settings = {"FILE_DIR": "/srv/app/.wstrace", "SERVICE_NAME": "web", "EXPORTERS": ["file"]}
    environ = {
        "WSTRACE_DIR": "/var/traces",
        "WSTRACE_SERVICE": "web-canary",
        "WSTRACE_EXPORTERS": " OTLP , console ",
        "OTEL_SERVICE_NAME": "ignored-when-wstrace-service-is-set",
    }

    config = load_config(settings, environ)

    assert config.file_dir == Path("/var/traces")
    assert config.service_name == "web-canary"
    assert config.exporters == ("otlp", "console")


def test_service_name_falls_back_to_otel_service_name():
    assert load_config({}, {"OTEL_SERVICE_NAME": "chat-web"}).service_name == "chat-web"
    assert (
        load_config({"SERVICE_NAME": "web"}, {"OTEL_SERVICE_NAME": "chat-web"}).service_name
        == "web"
    )


def test_flush_interval_defaults_to_otel_bsp_schedule_delay_and_the_setting_wins():
    assert load_config({}, {"OTEL_BSP_SCHEDULE_DELAY": "200"}).flush_interval_ms == 200
    assert (
        load_config({"FLUSH_INTERVAL_MS": 50}, {"OTEL_BSP_SCHEDULE_DELAY": "200"}).flush_interval_ms
        == 50
    )


def test_close_codes_merge_over_the_defaults_with_int_codes():
    config = load_config({"CLOSE_CODES": {"4010": ("session_expired", "auth")}}, NO_ENV)

    assert config.close_codes[4010] == ("session_expired", "auth")
    assert config.close_codes[4001] == c.DEFAULT_CLOSE_CODES[4001]


def test_redact_params_are_lowercased_and_pattern_is_compiled():
    config = load_config(
        {
            "REDACT_PARAMS": ["X-Tenant-Key"],
            "CONVERSATION_PATTERN": r"/rooms/(?P<conversation_id>\d+)",
        },
        NO_ENV,
    )

    assert config.redact_params == frozenset({"x-tenant-key"})
    assert config.conversation_pattern.search("/rooms/42").group("conversation_id") == "42"


def test_real_app_settings_are_kept_as_given():
    def resolve(scope, frame=None):
        return None

    config = load_config(
        {
            "CONVERSATION_RESOLVER": "myapp.ws.conversation_of",
            "APP_ID_FIELDS": ["uuid", "id", "uuid"],
            "FRAME_TYPE_FIELD": "kind",
            "ANSWERED_TYPES": ["chat.message", "prompt"],
            "HTTP_REQUESTS": False,
        },
        NO_ENV,
    )

    assert config.conversation_resolver == "myapp.ws.conversation_of"  # imported on first use
    assert config.app_id_fields == ("uuid", "id")
    assert config.frame_type_field == "kind"
    assert config.answered_types == frozenset({"chat.message", "prompt"})
    assert config.http_requests is False
    assert load_config({"CONVERSATION_RESOLVER": resolve}, NO_ENV).conversation_resolver is resolve
    assert load_config({"ANSWERED_TYPES": []}, NO_ENV).answered_types == frozenset()
    assert load_config({"APP_ID_FIELDS": []}, NO_ENV).app_id_fields == ()


def test_the_config_is_frozen():
    config = load_config({}, NO_ENV)
    with pytest.raises(AttributeError):
        config.enabled = False  # type: ignore[misc]


def test_setup_with_a_bad_setting_leaves_the_app_uninstrumented_and_logs_one_error(caplog):
    from wstrace import apps

    caplog.set_level(logging.ERROR, logger="wstrace")
    try:
        assert apps.setup({"EXPORTERS": ["kafka"]}) is False
        errors = apps.wstrace_settings_check()
    finally:
        apps._problem.clear()

    lines = [r.getMessage() for r in caplog.records if r.name == "wstrace"]
    assert len(lines) == 1 and "kafka" in lines[0] and "instrumentation is off" in lines[0]
    assert [e.id for e in errors] == ["wstrace.E001"]


def test_manage_py_check_reports_a_bad_wstrace_variable_in_the_real_app(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONPATH": str(example_app_dir()),
        "CHAT_DB_PATH": str(tmp_path / "db.sqlite3"),
        "WSTRACE_DIR": str(tmp_path / "traces"),
        "WSTRACE_EXPORTERS": "file,bogus",
    }

    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=example_app_dir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert check.returncode != 0
    assert "wstrace.E001" in check.stderr and "WSTRACE_EXPORTERS" in check.stderr, check.stderr
