"""Every text a log row shows passes through here: no view can show a secret.

``redacted(col)`` replaces, in a polars string column, what wstrace's own redaction
replaces (a token, a ``Bearer …`` value, a JWT, a cookie) plus DRF's ``Token <key>``
and the password of a URL (``redis://:pw@host``). Texts without a hint of a secret are
left as they are, without a Python call.
"""

from __future__ import annotations

import re

import polars as pl
from wstrace.redact import REDACTED, redact_text

__all__ = ["redact_log_text", "redacted"]

# Cheap pre-filter: only texts holding one of these go through the (Python) redaction.
# Every name wstrace's redaction treats as secret contains one of them.
_SECRET_HINTS = [
    "token", "jwt", "auth", "apikey", "api_key", "api-key", "password", "secret", "session",
    "cookie", "bearer", "basic", "eyj", "://",
]  # fmt: skip
# DRF's `Authorization: Token <key>`: wstrace's redaction knows Bearer and Basic only.
_SCHEME_TOKEN = re.compile(r"(?i)(\b(?:token|api-key)\s+)([A-Za-z0-9._~+/=-]{16,})")
# A password in a URL's user info (`redis://:pw@host`, `amqp://user:pw@host`): apps log
# their broker and layer URLs at start-up.
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)")


def redact_log_text(text: str) -> str:
    """A log text with its secrets replaced (wstrace's rules, DRF `Token <key>`, URL passwords)."""
    text = _URL_PASSWORD.sub(
        lambda m: m.group(1) + (m.group(2) if m.group(2) == "**" else REDACTED) + m.group(3), text
    )
    return redact_text(_SCHEME_TOKEN.sub(rf"\g<1>{REDACTED}", text))


def redacted(col: pl.Expr) -> pl.Expr:
    """`col` with secrets replaced; texts without a hint of one are left as they are."""
    suspicious = col.str.contains_any(_SECRET_HINTS, ascii_case_insensitive=True)
    return (
        pl.when(suspicious)
        .then(col.map_elements(redact_log_text, return_dtype=pl.String, skip_nulls=True))
        .otherwise(col)
    )
