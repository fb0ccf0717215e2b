"""Every text a log row shows passes through here: no view can show a secret.

``redacted(col)`` replaces, in a polars string column, exactly what wstrace's own
redaction replaces in spans and in the log lines it writes (``wstrace.redact``, which
imports neither Django nor the OpenTelemetry SDK): a token or other secret parameter, a
``Bearer``/``Basic``/``Token``/``Api-Key`` value, a key after ``token`` in prose, a JWT,
a cookie, the password of a URL (``redis://:pw@host``, ``amqp://user:pw@host//``). One
rule set for both sides: a form the app's spans hide cannot show up in a report built
from its logs. Texts without a hint of a secret are left as they are, without a Python
call.
"""

from __future__ import annotations

import polars as pl
from wstrace import redact

__all__ = ["redact_log_text", "redacted"]


def redact_log_text(text: str) -> str:
    """A log text with its secrets replaced, by wstrace's rules."""
    return redact.redact_text(text)


def redacted(col: pl.Expr) -> pl.Expr:
    """`col` with secrets replaced; texts without a hint of one are left as they are."""
    # Every text redact_text changes holds one of its hints: the others skip Python.
    suspicious = col.str.contains_any(redact.hints(), ascii_case_insensitive=True)
    return (
        pl.when(suspicious)
        .then(col.map_elements(redact_log_text, return_dtype=pl.String, skip_nulls=True))
        .otherwise(col)
    )
