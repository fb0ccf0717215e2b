"""Settings: ``settings.WSTRACE`` plus environment, turned into one frozen config.

Every key is optional::

    WSTRACE = {
        "SERVICE_NAME": "web",            # default: OTEL_SERVICE_NAME, else "django"
        "FILE_DIR": BASE_DIR / ".wstrace",  # embedded store; env WSTRACE_DIR overrides
        "EXPORTERS": ["file"],            # any of "file", "otlp", "console"
        "CONVERSATION_KWARG": "conversation_id",  # URL kwarg naming the conversation
        "CONVERSATION_PATTERN": r"/rooms/(?P<conversation_id>[^/]+)/",  # unset by default
        "CONVERSATION_RESOLVER": "myapp.ws.conversation_of",  # resolver(scope[, frame]) -> id
        "MESSAGE_ID_FIELD": "id",         # field of a client JSON frame used as message id
        "APP_ID_FIELDS": ["id", "message_id", "client_id", "uuid"],  # the app's own ids
        "FRAME_TYPE_FIELD": "type",       # field naming a frame's type ("action", "event" after it)
        "ANSWERED_TYPES": ["message"],    # frame types that must be answered; unset by default
        "HTTP_REQUESTS": True,            # trace HTTP requests that start work
        "CLOSE_CODES": {4010: ("auth_rejected", "auth")},  # merged over the defaults
        "RECORD_BODIES": False,           # message bodies are not recorded unless True
        "TRUST_CLIENT_CONTEXT": False,    # honour traceparent sent by the client
        "REDACT_PARAMS": ["session"],     # extra query/header names to redact
        "FILE_MAX_BYTES": 64 * 1024 * 1024,  # rotate a store file past this size
        "QUEUE_SIZE": 4096,               # spans buffered before dropping
        "FLUSH_INTERVAL_MS": 1000,        # default: OTEL_BSP_SCHEDULE_DELAY, else 1000
        "SHUTDOWN_TIMEOUT_MS": 2000,      # most an exiting process waits for its exports
    }

``SHUTDOWN_TIMEOUT_MS`` bounds the whole flush when a process (or a Celery prefork
child) exits, the exporters' own timeouts and retries included; an OTLP endpoint
that is down, or has not answered, is not waited for at all.

A connection belongs to a conversation only when something names it: the
URLRouter resolved ``CONVERSATION_KWARG``; ``CONVERSATION_PATTERN`` (when set)
matches the path; ``CONVERSATION_RESOLVER`` returned an id (called as
``resolver(scope)``, or ``resolver(scope, frame)`` with ``frame=None`` at
connect and the first client frame's parsed JSON when the scope gave nothing);
or, for a handshake refused before routing, the path matches a routed pattern
that has the kwarg. Otherwise its spans carry no ``ws.conversation_id``.

Environment: ``WSTRACE_ENABLED=0`` turns everything off, ``WSTRACE_DIR`` and
``WSTRACE_SERVICE`` override FILE_DIR and SERVICE_NAME, ``WSTRACE_EXPORTERS``
(comma separated) overrides EXPORTERS. Standard ``OTEL_*`` variables are honoured
by the OpenTelemetry SDK and exporters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wstrace import conventions as c

EXPORTER_NAMES = frozenset({"file", "otlp", "console"})
DEFAULT_APP_ID_FIELDS = ("id", "message_id", "client_id", "uuid")
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """A WSTRACE setting (or WSTRACE_* variable) has a value wstrace cannot use."""


@dataclass(frozen=True)
class Config:
    """Everything the instrumentation needs to know, validated once."""

    enabled: bool = True
    service_name: str = "django"
    file_dir: Path = Path(".wstrace")
    exporters: tuple[str, ...] = ("file",)
    conversation_kwarg: str = c.DEFAULT_CONVERSATION_KWARG
    conversation_pattern: re.Pattern[str] | None = None  # only when the user set one
    conversation_resolver: str | Callable[..., Any] | None = None  # imported on first use
    message_id_field: str = "id"
    app_id_fields: tuple[str, ...] = DEFAULT_APP_ID_FIELDS
    frame_type_field: str = "type"
    answered_types: frozenset[str] | None = None  # None: nobody said which must be answered
    http_requests: bool = True
    close_codes: Mapping[int, tuple[str, str]] = field(
        default_factory=lambda: dict(c.DEFAULT_CLOSE_CODES)
    )
    record_bodies: bool = False
    trust_client_context: bool = False
    redact_params: frozenset[str] = frozenset()
    file_max_bytes: int = 64 * 1024 * 1024
    queue_size: int = 4096
    flush_interval_ms: int = 1000
    shutdown_timeout_ms: int = 2000


def load_config(
    settings: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the config from the WSTRACE dict and the environment; raise ConfigError."""
    env = os.environ if environ is None else environ
    if not isinstance(settings, Mapping | None):
        raise ConfigError(f"WSTRACE must be a dict, got {type(settings).__name__}")
    raw = dict(settings or {})
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"WSTRACE has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    enabled = env.get("WSTRACE_ENABLED", "1").strip().lower() not in _FALSE
    enabled = enabled and _as_bool(raw.get("ENABLED", True), "ENABLED")
    service = (
        env.get("WSTRACE_SERVICE")
        or raw.get("SERVICE_NAME")
        or env.get("OTEL_SERVICE_NAME")
        or "django"
    )
    file_dir = _path(env.get("WSTRACE_DIR") or raw.get("FILE_DIR") or ".wstrace", "FILE_DIR")
    if env.get("WSTRACE_EXPORTERS"):
        exporters = _exporters(env["WSTRACE_EXPORTERS"], "environment variable WSTRACE_EXPORTERS")
    else:
        exporters = _exporters(raw.get("EXPORTERS", ("file",)), "WSTRACE['EXPORTERS']")
    return Config(
        enabled=enabled,
        service_name=str(service),
        file_dir=file_dir,
        exporters=exporters,
        conversation_kwarg=_as_str(
            raw.get("CONVERSATION_KWARG", c.DEFAULT_CONVERSATION_KWARG), "CONVERSATION_KWARG"
        ),
        conversation_pattern=_pattern(raw.get("CONVERSATION_PATTERN")),
        conversation_resolver=_resolver(raw.get("CONVERSATION_RESOLVER")),
        message_id_field=_as_str(raw.get("MESSAGE_ID_FIELD", "id"), "MESSAGE_ID_FIELD"),
        app_id_fields=_names(raw.get("APP_ID_FIELDS", DEFAULT_APP_ID_FIELDS), "APP_ID_FIELDS"),
        frame_type_field=_as_str(raw.get("FRAME_TYPE_FIELD", "type"), "FRAME_TYPE_FIELD"),
        answered_types=(
            None
            if raw.get("ANSWERED_TYPES") is None
            else frozenset(_names(raw["ANSWERED_TYPES"], "ANSWERED_TYPES"))
        ),
        http_requests=_as_bool(raw.get("HTTP_REQUESTS", True), "HTTP_REQUESTS"),
        close_codes=_close_codes(raw.get("CLOSE_CODES", {})),
        record_bodies=_as_bool(raw.get("RECORD_BODIES", False), "RECORD_BODIES"),
        trust_client_context=_as_bool(
            raw.get("TRUST_CLIENT_CONTEXT", False), "TRUST_CLIENT_CONTEXT"
        ),
        redact_params=frozenset(
            str(p).lower() for p in _as_list(raw.get("REDACT_PARAMS", ()), "REDACT_PARAMS")
        ),
        file_max_bytes=_as_int(raw.get("FILE_MAX_BYTES", 64 * 1024 * 1024), "FILE_MAX_BYTES"),
        queue_size=_as_int(raw.get("QUEUE_SIZE", 4096), "QUEUE_SIZE"),
        flush_interval_ms=_as_int(
            raw.get("FLUSH_INTERVAL_MS", _env_int(env, "OTEL_BSP_SCHEDULE_DELAY", 1000)),
            "FLUSH_INTERVAL_MS",
        ),
        shutdown_timeout_ms=_as_int(raw.get("SHUTDOWN_TIMEOUT_MS", 2000), "SHUTDOWN_TIMEOUT_MS"),
    )


_KNOWN_KEYS = frozenset(
    {
        "ENABLED",
        "SERVICE_NAME",
        "FILE_DIR",
        "EXPORTERS",
        "CONVERSATION_KWARG",
        "CONVERSATION_PATTERN",
        "CONVERSATION_RESOLVER",
        "MESSAGE_ID_FIELD",
        "APP_ID_FIELDS",
        "FRAME_TYPE_FIELD",
        "ANSWERED_TYPES",
        "HTTP_REQUESTS",
        "CLOSE_CODES",
        "RECORD_BODIES",
        "TRUST_CLIENT_CONTEXT",
        "REDACT_PARAMS",
        "FILE_MAX_BYTES",
        "QUEUE_SIZE",
        "FLUSH_INTERVAL_MS",
        "SHUTDOWN_TIMEOUT_MS",
    }
)


def _exporters(value: Any, where: str) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else _as_list(value, "EXPORTERS")
    cleaned = tuple(str(n).strip().lower() for n in names if str(n).strip())
    bad = [n for n in cleaned if n not in EXPORTER_NAMES]
    if bad:
        raise ConfigError(
            f"{where} has {', '.join(map(repr, bad))}; "
            f"expected any of {', '.join(sorted(EXPORTER_NAMES))}"
        )
    return cleaned


def _close_codes(value: Any) -> dict[int, tuple[str, str]]:
    if not isinstance(value, Mapping):
        raise ConfigError("WSTRACE['CLOSE_CODES'] must map close codes to (cause, hop) pairs")
    table = dict(c.DEFAULT_CLOSE_CODES)
    for code, entry in value.items():
        try:
            cause, hop = entry
            key = int(code)
        except (TypeError, ValueError):
            raise ConfigError(
                f"WSTRACE['CLOSE_CODES'][{code!r}] must be a (cause, hop) pair with an int code"
            ) from None
        if hop not in c.HOPS:
            raise ConfigError(
                f"WSTRACE['CLOSE_CODES'][{code!r}] names hop {hop!r}; expected one of {', '.join(c.HOPS)}"
            )
        table[key] = (str(cause), str(hop))
    return table


def _pattern(value: Any) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        pattern = re.compile(str(value))
    except re.error as exc:
        raise ConfigError(f"WSTRACE['CONVERSATION_PATTERN'] is not a valid regex: {exc}") from None
    if "conversation_id" not in pattern.groupindex:
        raise ConfigError(
            "WSTRACE['CONVERSATION_PATTERN'] needs a named group (?P<conversation_id>...)"
        )
    return pattern


# "package.module.function": imported lazily, on the first connection that needs it, so
# settings never import app code (and an import error costs a report, not the app).
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _resolver(value: Any) -> str | Callable[..., Any] | None:
    if value is None or (callable(value) and not isinstance(value, str)):
        return value
    if isinstance(value, str) and _DOTTED.fullmatch(value):
        return value
    raise ConfigError(
        "WSTRACE['CONVERSATION_RESOLVER'] must be a dotted path to a callable "
        f"('myapp.ws.conversation_of') or the callable itself, got {value!r}"
    )


def _names(value: Any, key: str) -> tuple[str, ...]:
    names = _as_list(value, key)
    if not all(isinstance(name, str) and name for name in names):
        raise ConfigError(f"WSTRACE[{key!r}] must be a list of non-empty strings, got {value!r}")
    return tuple(dict.fromkeys(names))


def _path(value: Any, key: str) -> Path:
    if isinstance(value, str | os.PathLike) and str(value):
        return Path(value)
    raise ConfigError(f"WSTRACE[{key!r}] must be a path (str or Path), got {value!r}")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"environment variable {name} must be an integer, got {value!r}"
        ) from None


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"WSTRACE[{key!r}] must be True or False, got {value!r}")


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigError(f"WSTRACE[{key!r}] must be a positive int, got {value!r}")


def _as_str(value: Any, key: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise ConfigError(f"WSTRACE[{key!r}] must be a non-empty string, got {value!r}")


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise ConfigError(f"WSTRACE[{key!r}] must be a list, got {value!r}")
