"""Process-wide state of the instrumentation: the active config, the tracer, self-protection.

``shield`` is the one place where a bug of ours is swallowed: the wrappers call
their bookkeeping through it, so an exception inside wstrace costs a span, is
logged once, and never reaches the application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace

import wstrace
from wstrace import conventions as c
from wstrace import provider as providers
from wstrace.config import Config
from wstrace.tracer import LeanTracer
from wstrace.tracer_fit import ChildSpans, can_replace

logger = logging.getLogger("wstrace")

T = TypeVar("T")

_state: dict[str, Any] = {"config": Config(enabled=False), "active": False, "installed": False}
# The same dict, for the per-frame wrappers: STATE["active"] is active() without the call.
STATE = _state
_reported: set[str] = set()


def activate(config: Config) -> None:
    """Make ``config`` the live configuration and turn the wrappers on."""
    _state["config"] = config
    _state["active"] = config.enabled
    _state["installed"] = _state["installed"] or config.enabled


def installed() -> bool:
    """Whether the provider and wrappers were set up in this process."""
    return _state["installed"]


def deactivate() -> None:
    """Turn every wrapper into a pass-through (they stay installed)."""
    _state["active"] = False


def active() -> bool:
    """Whether wrappers should record anything right now."""
    return _state["active"]


def config() -> Config:
    """The live configuration."""
    return _state["config"]


def tracer() -> trace.Tracer:
    """The wstrace tracer of the global provider (cached: the SDK's get_tracer is not cheap).

    Lean when the provider is the one wstrace installed and ``can_replace`` allows
    it (``wstrace.tracer``); the SDK's own tracer otherwise: when the app brought
    its provider, whose processors and sampler must see every span exactly as the
    SDK makes it, or when a sampler, span limits or ``OTEL_SDK_DISABLED`` (a no-op
    tracer, as the SDK gives) are configured.
    """
    cached = _state.get("tracer")
    # The global, read directly once it is set (get_tracer_provider() does more per call).
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if cached is not None and cached[0] is provider:
        return cached[1]
    provider = provider or trace.get_tracer_provider()
    if cached is None or cached[0] is not provider:
        if provider is providers.owned() and can_replace(provider):
            made: trace.Tracer = LeanTracer(provider, c.SCOPE_NAME, wstrace.__version__)
        else:
            made = provider.get_tracer(c.SCOPE_NAME, wstrace.__version__)
        cached = (provider, made)
        _state["tracer"] = cached
    return cached[1]


def spans() -> ChildSpans:
    """The seam of ``tracer()`` the per-message wrappers start their spans through.

    Kept apart from the ``"tracer"`` entry, keyed by the tracer itself, so whatever
    sets that entry (a benchmark forcing the SDK's tracer) gets the matching seam.
    """
    held, cached = _state.get("tracer"), _state.get("spans")
    if (  # tracer()'s own check, inlined: the consumer asks once per delivered chunk
        cached is not None
        and held is not None
        and cached[0] is held[1]
        and held[0] is getattr(trace, "_TRACER_PROVIDER", None)
    ):
        return cached[1]
    made = tracer()
    if cached is not None and cached[0] is made:  # the same tracer, the global read otherwise
        return cached[1]
    seam = ChildSpans(made)
    _state["spans"] = (made, seam)
    return seam


def report_once(what: str, exc: BaseException | None = None) -> None:
    """Log a problem of wstrace itself the first time it happens in this process."""
    key = f"{what}:{type(exc).__name__ if exc else ''}"
    if key in _reported:
        return
    _reported.add(key)
    if exc is None:
        logger.warning("wstrace: %s", what)
    else:
        logger.warning(
            "wstrace: %s failed (%s: %s); the app is unaffected", what, type(exc).__name__, exc
        )


def shield(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run instrumentation bookkeeping; on any error log once and return None."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        report_once(what, exc)
        return None
