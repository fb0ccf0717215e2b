"""What never leaves the process: tokens, keys, passwords, Authorization headers, cookies.

wstrace never records a query string or a header itself; this module is the
second line, applied to every span (ours and other instrumentations') before
any exporter sees it, and to every log line we write. The analyzer applies the
same ``redact_text`` to the log lines it reads, so both sides hide the same forms:

* ``key=value`` / ``"key": "value"`` for any key naming a secret (``token``,
  ``auth…``, ``password``, ``pass``, ``secret``, ``api_key``/``X-API-Key``,
  ``sentinel_kwargs``' ``password`` …), keeping an Authorization scheme
  (``Authorization: Token [redacted]``);
* ``Bearer``/``Basic`` values, bare JWTs, and a key-shaped value (16 or more
  key characters) after ``token``, ``Api-Key`` or ``secret`` in prose
  (``Invalid token 9944b0…``; ``token expired`` stays readable);
* the password of a URL's user info (``redis://:pw@host``, ``amqp://u:pw@host//``,
  ``sqs://id:secret@``), even unencoded ``@ : /`` in it, one URL at a time in
  ``;``/``,`` lists of them (Celery failover, Sentinel, cluster nodes).

``redact_url`` and ``redact_config`` make a connection setting fit to show a
person: host, port and db stay, every password becomes ``***``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"
URL_MASK = "***"  # the password of a URL shown to a person (doctor, layer descriptions)

# A key containing any of these names a secret.
_SECRET_PARAMS = (
    "token",
    "access_token",
    "refresh_token",
    "jwt",
    "auth",
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "password",
    "passwd",
    "pwd",
    "secret",
    "credential",
    "signature",
    "session",
    "sessionid",
    "cookie",
)
# Too short to look for inside longer keys ("bypass", "passed"): secret only as the whole key.
_EXACT_PARAMS = ("pass", "pw")
_EXACT_KEY = re.compile(r"(?<![\w.-])(?:pass|pw)[\"']?\s*[=:]")
_SECRET_HEADER_KEYS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")
# Authorization schemes kept in front of the value they introduce.
_SCHEMES = r"(?:bearer|basic|token|api[-_]?key|jwt)\s+"
_SCHEME_PREFIX = re.compile(rf"(?i){_SCHEMES}")
_SCHEME_URL = r"[a-z][a-z0-9+.-]*://"
# Where one URL of a list ends and the next starts: "a://…;b://…", "a://…, b://…".
_NEXT_URL = rf"[;,]\s*{_SCHEME_URL}"
# The words after which a key-shaped value is a key, in prose and headers alike.
_KEY_WORDS = ("token", "key", "secret")


@dataclass(frozen=True)
class _Rules:
    names: tuple[str, ...]
    minimal: tuple[str, ...]  # names holding no other name: enough to find any of them
    param: re.Pattern[str]  # key=value, "key": "value"
    query: re.Pattern[str]  # ?key=value in one URL
    exact: re.Pattern[str]  # a whole key that names a secret


def _build(extra: Iterable[str]) -> _Rules:
    names = sorted({*_SECRET_PARAMS, *(e.lower() for e in extra)}, key=len, reverse=True)
    # A key holding "token" holds it whether or not it says "access_token": the shortest
    # names alone find every key, and each alternative costs a try at every key character.
    minimal = [n for n in names if not any(o != n and o in n for o in names)]
    alternation = "|".join(re.escape(n) for n in minimal)
    exact = "|".join(re.escape(n) for n in _EXACT_PARAMS)
    key = rf"(?:[\w.-]*?(?:{alternation})[\w.-]*|(?:{exact}))"
    # key=value in query strings, form bodies, log lines, and "key": "value" in JSON or
    # dict reprs; any *token*/*auth* name counts. A key only starts where a word starts
    # (the look-behind): without it the engine retries every position of every word,
    # which cost ~0.7 ms on one 300-character log line. Right after "//" or "@" is a
    # URL's host ("redis://auth-cache:6379"), whose port is no secret. JSON inside a
    # JSON string keeps its quotes escaped ({\"token\": \"…\"}). A header pair
    # printed as a tuple counts too: "(b'x-api-key', b'…')" (ASGI scope headers). A
    # quoted value runs to its closing quote (a password may hold "," or ";"); an
    # unquoted one to the next separator.
    # A key's value is never the next secret key ("jwt: password: <pw>"): that key and
    # its own value are matched on their own, or <pw> would be left in the clear.
    param = re.compile(
        rf"(?i)(?<![\w.-])(?<!//)(?<!@)"
        rf"(?P<key>{key}\\?[\"']?\s*[=:]\s*|(?<=\()\s*b?[\"']{key}[\"']\s*,\s*)"
        rf"(?!b?[\"']?{key}[\"']?\s*[=:])"
        rf"(?P<b>b(?=[\"']))?(?P<q>\\?[\"'])?(?P<scheme>{_SCHEMES})?"
        r"(?P<value>(?(q)(?:(?!(?P=q))(?:[^\\]|\\.))*|(?:[^&\s\"',;\\]|\\(?![\"']))+))"
    )
    # In one URL, "&" and "#" alone end a value: "," and ";" may be part of a password.
    query = re.compile(rf"(?i)([?&;]{key}=)([^&#]*)")
    return _Rules(tuple(names), tuple(minimal), param, query, re.compile(rf"(?i){key}"))


_RULES = _build(())

_INLINE = re.compile(
    # Not when a key follows ("basic authorization=Basic <b64>"): the key rule takes it.
    r"(?i)(bearer\s+|basic\s+)(?!authorization[=:]|proxy-authorization[=:])"
    r"[A-Za-z0-9._~+/=-]+"  # Authorization values
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"  # bare JWTs
)
# "Invalid token 9944b0…", "Api-Key 2f…", DRF's "Token <key>": a key after its word. A short
# word there ("token expired", "Invalid token format") is prose and stays.
_KEYWORD = re.compile(
    r"(?i)(?<![a-z0-9])((?:tokens?|api[-_]?key|apikey|secret)\s+[\"']?)"
    r"[A-Za-z0-9_\-.=+/]{16,}"
)


def _url_password(stops: str) -> re.Pattern[str]:
    # The user info runs to the *last* "@" before the URL's path-less end ("?", "#", a
    # stop character, "://", or the next URL of a list): a password may hold "@", ":"
    # and "/" unencoded, and hiding too much beats showing a piece of one. Stopping at
    # "://" also keeps a hostile "a://a://…" line linear. Bounded all the same.
    return re.compile(
        rf"(?i)(?<![a-z0-9+.-])({_SCHEME_URL}[^/?#:{stops}]{{0,256}}:)"
        rf"((?:(?!{_NEXT_URL}|://)[^?#{stops}]){{0,2048}})@"
    )


_URL_IN_TEXT = _url_password(r"\s\"'<>")  # prose and reprs: quotes and brackets end a URL
_URL_ALONE = _url_password(r"\s")  # one setting: only whitespace ends it


# Values repeat a lot (layer identities, channel names, URLs without secrets): remember the
# ones that looked suspicious to the pre-check but were clean. Never holds a secret.
_CLEAN: set[str] = set()
_CLEAN_MAX = 4096
_CLEAN_MAX_LEN = 512
_SECRET_KEYS: dict[str, bool] = {}


def configure(extra_params: Iterable[str]) -> None:
    """Add user-named parameters (WSTRACE REDACT_PARAMS) to the redaction set."""
    global _RULES
    _RULES = _build(extra_params)
    _CLEAN.clear()


def hints() -> list[str]:
    """Lower-case words of which every text ``redact_text`` changes holds one.

    A cheap filter for callers that scan many texts at once (the analyzer's log rows):
    a text without any of them is returned unchanged by ``redact_text``.
    """
    return sorted({*_RULES.names, *_EXACT_PARAMS, *_KEY_WORDS, "bearer", "basic", "eyj", "://"})


def redact_text(text: str) -> str:
    """Replace secret values inside free text (URLs, messages, log lines, reprs)."""
    if not text or not _may_hold_secret(text) or text in _CLEAN:
        return text
    clean = _json_scrubbed(text) if text[0] in "{[" and text[-1] in "}]" else None
    if clean is None:
        clean = _scrub(text, REDACTED, _URL_IN_TEXT)
    if clean == text and len(text) <= _CLEAN_MAX_LEN:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(text)
    return clean


def _json_scrubbed(text: str) -> str | None:
    """A JSON document redacted value by value (None when ``text`` is no JSON document).

    Text rules alone cannot tell a JSON string's closing quote from a quoted value
    (``{"msg": "token=", "n": 1}``); a report's JSON column must stay JSON.
    """
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict | list):
        return None
    clean = _walk(document, None)
    if clean == document:
        return text
    out = json.dumps(clean, ensure_ascii=False)
    try:
        out.encode()
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: keep it escaped
        out = json.dumps(clean)
    return out


def _walk(value: Any, key: str | None) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, None) for v in value]
    secret_key = key is not None and _RULES.exact.fullmatch(key) is not None
    if isinstance(value, str):
        return _masked_value(key, value) if secret_key and key else redact_text(value)
    if secret_key and isinstance(value, int | float) and not isinstance(value, bool):
        return value if "tokens" in str(key).lower() else REDACTED  # token counts stay
    return value


def _masked_value(key: str, value: str) -> str:
    if not value or value == REDACTED:
        return value
    scheme = _SCHEME_PREFIX.match(value) if "auth" in key.lower() else None
    return f"{scheme[0]}{REDACTED}" if scheme else REDACTED


def _scrub(text: str, mask: str, url: re.Pattern[str]) -> str:
    lowered = text.lower()
    clean = text
    if "://" in text and "@" in text:
        clean = url.sub(lambda m: f"{m.group(1)}{_masked(m.group(2), mask)}@", clean)
    # Inline before key=value: "Authorization: Bearer <t>" must lose <t>, not "Bearer".
    clean = _INLINE.sub(_inline_sub, clean)
    if "token" in lowered or "key" in lowered or "secret" in lowered:
        clean = _KEYWORD.sub(lambda m: f"{m.group(1)}{REDACTED}", clean)
    rules = _RULES
    if any(name in lowered for name in rules.minimal) or (
        ("pass" in lowered or "pw" in lowered) and _EXACT_KEY.search(lowered)
    ):
        clean = rules.param.sub(lambda m: _param_sub(m, mask), clean)
    return clean


def _param_sub(match: re.Match[str], mask: str) -> str:
    key, scheme, value = match["key"], match["scheme"], match["value"]
    quote = (match["b"] or "") + (match["q"] or "")
    if value.isdigit() and "tokens" in key.lower():
        return match[0]  # "prompt_tokens=512": a count of an LLM's tokens, not a token
    if not scheme or "auth" in key.lower():
        return f"{key}{quote}{scheme or ''}{mask}"
    # Only an Authorization-like header names a scheme: in "password=Token prefix=a" the
    # password reads like one. Quoted, the whole text is the password; unquoted, the
    # word is, and what follows it is text of its own (checked again).
    if quote:
        return f"{key}{quote}{mask}"
    word = scheme.rstrip()
    rest = _RULES.param.sub(lambda m: _param_sub(m, mask), value)
    return f"{key}{mask}{scheme[len(word) :]}{rest}"


def _masked(password: str, mask: str) -> str:
    # Already hidden (Celery prints "redis://:**@host"; a second pass sees our own mask).
    return password if not password.strip("*") or password == REDACTED else mask


def _may_hold_secret(text: str) -> bool:
    # Nearly every value (ids, hop names, paths) fails this in a few string scans.
    return (
        "=" in text
        or ":" in text
        or "earer" in text
        or "asic " in text
        or "oken" in text
        or "OKEN" in text
        or "ey" in text  # "key", and a JWT's "eyJ"
        or "EY" in text
        or "ecret" in text
        or "ECRET" in text
    )


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


def redact_url(url: Any) -> str:
    """A connection URL (Redis, Sentinel, a Celery broker) without its passwords, for a person.

    Each password becomes ``***`` and the user name stays: which account connects is
    evidence, its secret is not. Covers user info (``redis://:pw@host``,
    ``amqp://user:pw@host//``, ``unix://:pw@/path``), query parameters
    (``?password=``, ``?pass=``, ``?auth=``, ``?token=`` …) and every URL of a
    ``;``/``,`` list or a list of URLs (Celery failover, Sentinel and cluster nodes).
    """
    if isinstance(url, list | tuple):  # broker_url may be a list: Celery's own ";" form
        return ";".join(redact_url(u) for u in url)
    text = str(url)
    clean = _URL_ALONE.sub(lambda m: f"{m.group(1)}{_masked(m.group(2), URL_MASK)}@", text)
    if "?" in clean or "&" in clean or ";" in clean:
        clean = _RULES.query.sub(lambda m: f"{m.group(1)}{URL_MASK}" if m.group(2) else m[0], clean)
    return clean


def redact_config(value: Any) -> Any:
    """A connection setting (a channels_redis host, Celery transport options) fit to show.

    Dicts lose the value of every key naming a secret (``password``,
    ``sentinel_kwargs={"password": …}``), strings are redacted as URLs, lists and
    tuples item by item; the shape stays, so ``("cache", 6379)`` is still a pair.
    """
    if isinstance(value, Mapping):
        return {
            k: URL_MASK
            if isinstance(k, str) and _RULES.exact.fullmatch(k) and value[k] not in (None, "")
            else redact_config(value[k])
            for k in value
        }
    if isinstance(value, list):
        return [redact_config(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_config(v) for v in value)
    return redact_url(value) if isinstance(value, str) else value
