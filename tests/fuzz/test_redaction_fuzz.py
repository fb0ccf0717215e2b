"""Fuzzing redaction: wstrace's ``redact_text``/``redact_url`` and the analyzer's log redaction.

For any text: redaction never raises and returns text; redacting twice changes
nothing more (what is hidden stays hidden, the mask is not itself redacted into
something else); a secret planted in any of the forms the rules promise to hide is
gone, whatever surrounds it; the polars column path gives what the per-text path
gives (its cheap pre-filter never lets a secret through); and it ends quickly, even
on texts built to make a regex backtrack.
"""

from __future__ import annotations

import polars as pl
from hypothesis import assume, given
from hypothesis import strategies as st
from wsanalyze.logparse.redaction import redact_log_text, redacted
from wstrace.redact import REDACTED, redact_text, redact_url

from .budget import fuzz_settings
from .hostile import nasty_text

# Pieces of the forms the rules look for, glued at random: near-misses of every rule.
FRAGMENTS = (
    "token", "Token ", "access_token", "TOKEN", "jwt", "auth", "Authorization: ", "password",
    "pass", "pw", "passwd", "secret", "api_key", "X-API-Key", "apikey", "session", "sessionid",
    "cookie", "Cookie: ", "Bearer ", "basic ", "eyJ", "eyJhbGciOiJIUzI1NiJ9.", "=", ":", "://",
    "redis://", "amqp://", "@", "?", "&", ";", ",", "#", '"', "'", "\\", "\\\"", "{", "}", "(",
    "b'", "/", "//", " ", "\t", "*", "**", REDACTED, "***", "tokens=512", "0123456789abcdef",
)  # fmt: skip
fragments = st.sampled_from(FRAGMENTS)
texts = st.lists(fragments | nasty_text, max_size=24).map("".join) | nasty_text
# Texts built to make a backtracking regex go quadratic or worse.
HEAVY_PIECES = (
    "token=", "a://", "a://b:", "redis://:", "@", "\\", '"', "'", "pass ", "token ", "x" * 15,
    "Bearer ", "eyJaaaaa.", "?token=", "&", "=", ":", "a=", "(b'token', ",
)  # fmt: skip
heavy = st.builds(
    lambda piece, n, tail: piece * n + tail,
    st.sampled_from(HEAVY_PIECES),
    st.sampled_from([1_000, 10_000, 50_000]),
    st.sampled_from(["", "@", "\\", "x", '"', "=" + "k" * 20]),
)
secrets = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=20, max_size=40
)
# Forms the redaction promises to hide (docstrings of wstrace.redact and logparse.redaction).
FORMS = (
    "token={s}",
    "access_token={s}&x=1",
    "GET /ws/chat/?token={s} HTTP/1.1",
    "password: {s}",
    '{{"password": "{s}"}}',
    "'api_key': '{s}'",
    "Authorization: Bearer {s}",
    "authorization=Basic {s}",
    "Cookie: sessionid={s}; csrftoken={s}",
    "redis://:{s}@redis:6379/0",
    "amqp://guest:{s}@rabbit:5672//",
    "eyJhbGciOiJIUzI1NiJ9.eyJ{s}.{s}",
    "X-API-Key={s}",
)


def _all_text(*values: object) -> None:
    for value in values:
        assert isinstance(value, str)


@fuzz_settings(400, deadline_s=2.0)
@given(text=texts | heavy)
def test_redaction_never_raises_and_is_stable(text):
    once = redact_text(text)
    log = redact_log_text(text)
    url = redact_url(text)
    _all_text(once, log, url)
    assert redact_text(once) == once, (text, once)
    assert redact_log_text(log) == log, (text, log)
    assert redact_url(url) == url, (text, url)


@fuzz_settings(300, deadline_s=2.0)
@given(
    form=st.sampled_from(FORMS),
    secret=secrets,
    before=texts,
    after=texts,
)
def test_a_planted_secret_is_gone_whatever_surrounds_it(form, secret, before, after):
    assume(secret not in before + after)
    text = f"{before} {form.format(s=secret)} {after}"
    for redact in (redact_text, redact_log_text):
        out = redact(text)
        assert secret not in out, (redact.__name__, text, out)


@fuzz_settings(100, deadline_s=5.0)
@given(rows=st.lists(texts | st.none(), min_size=1, max_size=20))
def test_the_column_path_redacts_as_the_text_path_does(rows):
    """``redacted(col)`` skips texts without a hint; none of them needed redacting."""
    rows = [r for r in rows if r is None or _utf8(r)]
    column = pl.DataFrame({"t": rows}, schema={"t": pl.String})
    got = column.select(redacted(pl.col("t")))["t"].to_list()
    assert got == [None if r is None else redact_log_text(r) for r in rows]


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
