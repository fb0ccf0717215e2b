"""What never leaves the process: tokens, Authorization headers, cookies.

wstrace never records a query string or a header itself; this module is the
second line, applied to every span (ours and other instrumentations') before
any exporter sees it, and to every log line we write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"

_SECRET_PARAMS = (
    "token",
    "access_token",
    "refresh_token",
    "jwt",
    "auth",
    "authorization",
    "api_key",
    "apikey",
    "password",
    "secret",
    "session",
    "sessionid",
    "cookie",
)
_SECRET_HEADER_KEYS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")


def _build(extra: Iterable[str]) -> tuple[re.Pattern[str], re.Pattern[str], tuple[str, ...]]:
    names = sorted({*_SECRET_PARAMS, *(e.lower() for e in extra)}, key=len, reverse=True)
    alternation = "|".join(re.escape(n) for n in names)
    # key=value in query strings, form bodies, log lines, and "key": "value" in JSON or
    # dict reprs; any *token*/*auth* name counts. A key only starts where a word starts
    # (the look-behind): without it the engine retries every position of every word,
    # which cost ~0.7 ms on one 300-character log line.
    param = re.compile(
        rf"(?i)(?<![\w.-])((?:[\w.-]*?(?:{alternation})[\w.-]*)[\"']?\s*[=:]\s*)([\"']?)(?!(?:bearer|basic)\s)([^&\s\"',;]+)",
    )
    inline = re.compile(
        r"(?i)(bearer\s+|basic\s+)[A-Za-z0-9._~+/=-]+"  # Authorization values
        r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"  # bare JWTs
    )
    return param, inline, tuple(names)


_PARAM, _INLINE, _NAMES = _build(())


# Values repeat a lot (layer identities, channel names, URLs without secrets): remember the
# ones that looked suspicious to the pre-check but were clean. Never holds a secret.
_CLEAN: set[str] = set()
_CLEAN_MAX = 4096
_CLEAN_MAX_LEN = 512
_SECRET_KEYS: dict[str, bool] = {}


def configure(extra_params: Iterable[str]) -> None:
    """Add user-named parameters (WSTRACE REDACT_PARAMS) to the redaction set."""
    global _PARAM, _INLINE, _NAMES
    _PARAM, _INLINE, _NAMES = _build(extra_params)
    _CLEAN.clear()


def redact_text(text: str) -> str:
    """Replace secret values inside free text (URLs, messages, log lines)."""
    if not text or not _may_hold_secret(text) or text in _CLEAN:
        return text
    # Inline first: "Authorization: Bearer <t>" must lose <t>, not just the word "Bearer".
    clean = _INLINE.sub(_inline_sub, text)
    lowered = clean.lower()
    if any(name in lowered for name in _NAMES):  # no secret-ish key name: no key=value to hide
        clean = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", clean)
    if clean == text and len(text) <= _CLEAN_MAX_LEN:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(text)
    return clean


def _may_hold_secret(text: str) -> bool:
    # Nearly every value (ids, hop names, paths) fails this in a few string scans.
    return "=" in text or ":" in text or "eyJ" in text or "earer" in text or "asic " in text


def _inline_sub(match: re.Match[str]) -> str:
    prefix = match.group(1)
    return f"{prefix}{REDACTED}" if prefix else REDACTED


def is_secret_key(key: str) -> bool:
    """True for attribute keys that hold a header or parameter that is secret as a whole."""
    known = _SECRET_KEYS.get(key)
    if known is None:
        lowered = key.lower()
        known = any(h in lowered for h in _SECRET_HEADER_KEYS)
        if len(_SECRET_KEYS) < _CLEAN_MAX:  # attribute keys are few; never grow unbounded
            _SECRET_KEYS[key] = known
    return known


def redact_url(url: str) -> str:
    """A connection URL (Redis, a Celery broker) without its password, shown to a person.

    The password becomes ``***`` and the user name stays: which account connects is
    evidence, its secret is not. ``redact_text`` does not do this (a URL's password has
    no key name to find it by).
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
