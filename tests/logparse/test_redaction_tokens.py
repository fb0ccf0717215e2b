"""Reports built from logs hide every form wstrace's spans hide: the same rules, one module.

The cases are the instrumentation's (tests/instrumentation/test_redaction_tokens.py):
token schemes in headers and in prose, JWTs, plus the passwords of broker and layer
URLs an app prints at start-up. Each goes through the analyzer's polars expression and
through whole log files, as JSON lines and as plain lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsanalyze.logparse import parse_lines, read_file, redact_log_text
from wsanalyze.logparse.redaction import redacted
from wstrace import redact

from tests.instrumentation.test_redaction_tokens import CASES, FREE_TEXT, HEADERS, KEY, READABLE

URLS = [
    ("broker redis://:p@ss:w/rd-77@cache:6379/0 ready", "p@ss:w/rd-77"),
    ("transport amqp://guest:Gu3st!pw@rabbit:5672// connected", "Gu3st!pw"),
    ("layer hosts=['rediss://app:S3cr3t%2Fpw@cache:6380/1']", "S3cr3t%2Fpw"),
    ("sentinel://:sentpw-1@s1:26379;sentinel://:sentpw-1@s2:26379 master=mymaster", "sentpw-1"),
    ("unix:///run/redis.sock?password=sockpw-9&db=2", "sockpw-9"),
    ("{'master_name': 'mymaster', 'sentinel_kwargs': {'password': 'kw-pass-3'}}", "kw-pass-3"),
    ("sqs://AKIAEXAMPLE:wJal/rXUt+nFEMI@ for queue agents", "wJal/rXUt+nFEMI"),
]
ALL = CASES + URLS


def _column(texts: list[str]) -> list[str]:
    frame = pl.DataFrame({"text": texts})
    return frame.select(redacted(pl.col("text"))).to_series().to_list()


@pytest.mark.parametrize(("text", "secret"), HEADERS, ids=range(len(HEADERS)))
def test_a_header_s_token_is_hidden_in_a_log_row(text: str, secret: str) -> None:
    [clean] = _column([text])

    assert secret not in clean and redact.REDACTED in clean


@pytest.mark.parametrize(("text", "secret"), FREE_TEXT + URLS, ids=range(len(FREE_TEXT + URLS)))
def test_a_token_or_password_in_prose_is_hidden_in_a_log_row(text: str, secret: str) -> None:
    [clean] = _column([text])

    assert secret not in clean and redact.REDACTED in clean


def test_the_analyzer_and_wstrace_give_the_same_text() -> None:
    texts = [t for t, _ in ALL] + READABLE

    assert _column(texts) == [redact.redact_text(t) for t in texts]
    assert [redact_log_text(t) for t in texts] == [redact.redact_text(t) for t in texts]


def test_prose_about_tokens_and_celery_s_own_mask_stay_readable() -> None:
    texts = [*READABLE, "transport: redis://:**@localhost:6379/0", None]

    assert _column(texts) == texts


def test_no_secret_reaches_a_row_of_a_parsed_log_file(tmp_path: Path) -> None:
    json_lines = [
        json.dumps({"event": text, "conversation_id": f"c{i}", "level": "warning"})
        for i, (text, _) in enumerate(ALL)
    ]
    plain = [
        f"2026-01-01 12:00:{i % 60:02d},000 WARNING core.auth {text} conv=p{i}"
        for i, (text, _) in enumerate(ALL)
    ]
    path = tmp_path / "app.log"
    path.write_text("\n".join(json_lines + plain) + "\n")

    rows = parse_lines(read_file(path)).collect()

    assert rows.height == 2 * len(ALL)
    strings = rows.select(pl.col(pl.String)).to_dicts()
    shown = json.dumps(strings)
    for _, secret in ALL:
        assert secret not in shown and json.dumps(secret)[1:-1] not in shown
    assert "Invalid token [redacted]" in shown and KEY not in shown


FRAGMENTS = [t for t, _ in ALL] + READABLE + ['"', "\\", "'", "token=", "password: ", "x"]


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["msg", "event", "headers", "password", "token", "note"]),
        st.lists(st.sampled_from(FRAGMENTS), max_size=5).map(" | ".join),
        max_size=4,
    )
)
def test_a_json_column_stays_json_and_holds_no_secret(fields: dict[str, str]) -> None:
    # The attributes column is JSON the views parse again: a value that ends in
    # "token=" must not make its closing quote look like the start of a secret.
    document = json.dumps({"fields": fields, "level": "WARNING"})

    [clean] = _column([document])

    assert json.loads(clean)["level"] == "WARNING"
    for _, secret in ALL:
        assert secret not in clean
