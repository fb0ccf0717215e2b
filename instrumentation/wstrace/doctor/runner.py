"""Running the registered checks, and the facts other processes are compared with."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from .registry import STEPS, Check, Options, Result, check_names
from .status import FAIL


@contextmanager
def _quiet() -> Iterator[None]:
    """Probes that leave no spans: wstrace's wrappers and OpenTelemetry instrumentations off."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    from wstrace import runtime

    was_active = runtime.active()
    if was_active:
        runtime.deactivate()
    try:
        with suppress_instrumentation():
            yield
    finally:
        if was_active:
            runtime.activate(runtime.config())


def layer_identity() -> dict[str, str] | None:
    """This process's layer identity, as wstrace writes it in ws.layer / ws.layer_desc."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return None
    try:
        from wstrace.channels.layer_identity import identity

        return dict(identity(layer))
    except Exception:  # wstrace not importable: a plain description
        return {"ws.layer_backend": f"{type(layer).__module__}.{type(layer).__qualname__}"}


def run_checks(opts: Options | None = None) -> dict[str, Any]:
    """Every check (or `opts.only`), with the facts other processes are compared with."""
    opts = opts or Options()
    wanted = set(opts.only or check_names())
    checks: list[Check] = []
    for step in STEPS:
        if not wanted.intersection(step.names):
            continue
        result: Result
        try:
            if step.quiet:
                with _quiet():  # the doctor's probes are no evidence of the app
                    result = step.run(opts)
            else:  # it must see wstrace as the app does
                result = step.run(opts)
        except Exception as exc:  # a check must never take the others down
            result = [
                Check(n, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}", [repr(exc)])
                for n in step.names
            ]
        results = result if isinstance(result, list) else [result]
        checks += [c for c in results if c.name in wanted]
    facts: dict[str, Any] = {
        "settings": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "pid": os.getpid(),
    }
    try:
        facts["layer"] = layer_identity()
    except Exception as exc:
        facts["layer"] = None
        facts["layer_error"] = f"{type(exc).__name__}: {exc}"
    # Probes quote exceptions and settings, which may name a broker or layer URL.
    return _redacted({"checks": [asdict(c) for c in checks], "facts": facts})


def _redacted(value: Any) -> Any:
    """Every string in the report without URL passwords: no check can leak one.

    ``redact_url`` rather than ``redact_text``: the report is prose about the app's own
    code ("JWTCookieAuthMiddleware: reads a cookie"), which the free-text rules would cut.
    """
    from wstrace.redact import redact_url

    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value
