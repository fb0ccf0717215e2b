"""Exceptions recorded without what they say: a client frame's handler may quote the frame.

With ``RECORD_BODIES`` off, an exception raised while handling a client frame is
recorded as its type and where it was raised (file:line, function), never its message,
source lines or locals.
"""

from __future__ import annotations

import traceback

from opentelemetry import trace

# --- exceptions that may quote a client frame ------------------------------------------
_MAX_FRAMES = 64  # innermost frames kept of each exception's traceback
_MAX_CHAIN = 8  # exceptions of a __cause__/__context__ chain kept
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def record_bare_exception(span: trace.Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` as its type and where it was raised, never its message.

    What a client frame's handler raises may quote the frame (DRF's
    ``ValidationError``, ``ValueError(f"bad input {text}")``); with
    ``RECORD_BODIES`` off, the ``exception`` event keeps only ``exception.type``
    and a stack trace of file:line and function names (no message, no source
    line, no locals).
    """
    span.add_event(
        "exception",
        {
            "exception.type": exception_type(exc),
            "exception.stacktrace": bare_traceback(exc),
            "exception.escaped": "False",
        },
    )


def exception_type(exc: BaseException) -> str:
    """``module.QualName`` of the exception's class (just the name for builtins)."""
    kind = type(exc)
    module = kind.__module__
    return f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__


def bare_traceback(exc: BaseException) -> str:
    """``traceback.format_exception(exc)`` without messages, source lines or notes."""
    # Newest first, each with the text printed between it and the newer one.
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    link = ""
    older: BaseException | None = exc
    while older is not None and id(older) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(older))
        chain.append((older, link))
        if older.__cause__ is not None:
            link, older = _CAUSE, older.__cause__
        elif older.__context__ is not None and not older.__suppress_context__:
            link, older = _CONTEXT, older.__context__
        else:
            older = None
    return "".join(_bare_one(one) + link for one, link in reversed(chain))


def _bare_one(exc: BaseException) -> str:
    """One exception of a chain: its frames (innermost last) and its type."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        if len(frames) > _MAX_FRAMES:
            lines.append(f"  [{len(frames) - _MAX_FRAMES} frames left out]\n")
        for frame, lineno in frames[-_MAX_FRAMES:]:
            code = frame.f_code
            lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
    lines.append(f"{exception_type(exc)}\n")
    return "".join(lines)


def _wraps(exc: BaseException | None, failure: BaseException | None) -> bool:
    """Whether ``exc`` is ``failure`` or wraps it (its cause or context, 8 levels down)."""
    seen = 0
    while exc is not None and failure is not None and seen < 8:
        if exc is failure:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _looks_like_auth(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    text = f"{type(exc).__name__} {exc}".lower()
    return module.startswith(("jwt", "rest_framework_simplejwt", "jose")) or any(
        word in text for word in ("token", "signature", "jwt", "auth")
    )
