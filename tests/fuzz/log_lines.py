"""Log lines for fuzzing the log parsers: every producer's shapes, hostile values inside.

``producer_line()`` draws one line as Daphne, Celery, Redis, channels_redis or an
app (plain, logfmt, JSON) writes it, with its variable parts (paths, ids, task
names, times, messages) replaced by hostile values. ``framed(lines, framing)``
writes lines as a `docker compose logs -t`, `docker logs -t`, json-file or plain
file. ``good_line(tag)`` is a line the parsers must always find again: its record
names ``conv-good-<tag>``.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from .hostile import ANSI, MARKUP, ODD, encode, enormous_text, nested, raw_numbers

GOOD_PREFIX = "conv-good-"
GOOD_STAMP = "2026-01-02T10:00:00.000000000Z"  # an engine stamp for the good lines
FRAMINGS = ("compose", "docker", "json-file", "plain")

# What a real line holds in each place, and what an attacker may put there instead.
words = (
    st.sampled_from(ANSI + MARKUP + ODD)
    | st.text(max_size=30)
    | st.sampled_from(["conversation_id=", "_id=", "ERROR", "Traceback", " | ", "=", '"', "{"])
)
one_line = words.map(lambda s: s.replace("\n", " ").replace("\r", " "))
ids = one_line | st.sampled_from(["conv-1", "-", "None", "0" * 32, "a" * 5_000, "[/]", "..%2f"])
paths = ids.map(lambda s: f"/ws/chat/{s}/") | one_line
local_stamps = st.sampled_from(
    [
        "2026-01-02 10:00:00,123",
        "2026-01-02T10:00:00.123456",
        "9999-12-31 23:59:59,999",
        "0000-00-00 00:00:00,000",
        "2026-02-30 25:61:61,000",
        "2026-01-02 10:00:00,1234567890123",
        "1677-09-21 00:12:43,145",
        "2262-04-11 23:47:16,854",
    ]
)
engine_stamps = st.sampled_from(
    [
        "2026-01-02T10:00:00.123456789Z",
        "2026-01-02T10:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2262-04-12T00:00:00Z",
        "1000-01-01T00:00:00Z",
        "2026-13-45T99:99:99Z",
        "2026-01-02T10:00:00.1234567890123456789Z",
        "2026-01-02T10:00:00+99:99",
        "2026-01-02T10:00:00.5+01:00",
        "2026-01-02T10:00:00",
    ]
)
numbers = st.sampled_from(["0", "-1", "1e309", "nan", "99999999999999999999999", "1.5", "", "x"])


def _daphne(verb: str, client: str, stamp: str, path: str) -> str:
    return f'{client} - - [{stamp}] "{verb} {path}" - -'


_APP_KEYS = st.sampled_from(
    ["conversation_id", "connection_id", "message_id", "task_id", "trace_id", "span_id",
     "close_code", "code", "reason", "group", "path", "layer", "queue", "level", "msg",
     "event", "timestamp", "ts", "exc_info", "error", "user", "ws.conversation_id", "x"]
)  # fmt: skip
_JSON_VALUES = (
    one_line
    | numbers
    | st.integers()
    | st.floats()
    | st.booleans()
    | st.none()
    | raw_numbers
    | st.builds(nested, st.sampled_from([50, 900, 5_000]), st.sampled_from(["list", "dict"]))
    | st.dictionaries(_APP_KEYS, one_line, max_size=3)
)


@st.composite
def _logfmt(draw: st.DrawFn) -> str:
    pairs = []
    for key, value in draw(st.lists(st.tuples(_APP_KEYS, ids | numbers), max_size=6)):
        quoted = draw(st.booleans())
        value = '"' + value.replace('"', '\\"') + '"' if quoted else value.replace(" ", "")
        pairs.append(f"{key}={value}")
    return draw(st.sampled_from(["", "ws closed ", "level=info "])) + " ".join(pairs)


@st.composite
def _json_record(draw: st.DrawFn) -> str:
    record = draw(st.dictionaries(_APP_KEYS, _JSON_VALUES, max_size=6))
    text = encode(record)
    if draw(st.integers(0, 4)) == 0:  # truncated, or with a prefix before the object
        text = draw(st.sampled_from([text[: len(text) // 2], "prefix " + text]))
    return text


_CELERY_MESSAGES = (
    "Task {name}[{id}] received",
    "Task {name}[{id}] succeeded in {n}s: 'ok'",
    "Task {name}[{id}] raised unexpected: {text}",
    "Task {name}[{id}] retry: Retry in {n}s: {text}",
    "Soft time limit ({n}s) exceeded for {name}[{id}]",
    "Hard time limit ({n}s) exceeded for {name}[{id}]",
    "Received unregistered task of type '{name}'.",
    "Task handler raised error: WorkerLostError('{text}')",
    "Terminating {id} ({text})",
    "Discarding revoked task: {name}[{id}]",
    "Tasks flagged as revoked: {id}",
    "Process '{name}' pid:{n} exited with 'signal 9 (SIGKILL)'",
    "consumer: Cannot connect to redis://:{text}@127.0.0.1:6379/0: {text}",
    "consumer: Connection to broker lost. {text}",
    "Connected to redis://{text}@redis:6379/0",
    "celery@{name} ready.",
)
_REDIS_MESSAGES = (
    "* Ready to accept connections tcp",
    "# User requested shutdown... {text}",
    "- Client id={n} addr={text} closed for overcoming of output buffer limits.",
    "# WARNING maxmemory {text}",
    "# {text}",
)


@st.composite
def producer_line(draw: st.DrawFn) -> str:
    """One line in the shape a known producer writes, hostile values in its variable parts."""
    kind = draw(st.integers(0, 11))
    text, name, task, n = draw(one_line), draw(ids), draw(ids), draw(numbers)
    stamp = draw(local_stamps)
    if kind == 0:
        verb = draw(st.sampled_from(["WSCONNECTING", "WSCONNECT", "WSREJECT", "WSDISCONNECT"]))
        return _daphne(
            verb, draw(ids), draw(st.sampled_from(["02/Jan/2026:10:00:00", text])), draw(paths)
        )
    if kind == 1:
        verb = draw(st.sampled_from(["HANDSHAKING", "CONNECT", "REJECT", "DISCONNECT"]))
        return f"WebSocket {verb} {draw(paths)} [{draw(ids)}]"
    if kind == 2:
        what = draw(st.sampled_from(["Exception inside application: ", "Application instance "]))
        tail = (
            " for connection x took too long to shut down and was killed."
            if "instance" in what
            else ""
        )
        return f"{stamp} ERROR    {what}{text}{tail}"
    if kind == 3:
        message = draw(st.sampled_from(_CELERY_MESSAGES)).format(name=name, id=task, n=n, text=text)
        level = draw(st.sampled_from(["INFO", "ERROR", "WARNING", text]))
        return f"[{stamp}: {level}/MainProcess] {message}"
    if kind == 4:
        message = draw(st.sampled_from(_REDIS_MESSAGES)).format(n=n, text=text)
        return f"1:M {draw(st.sampled_from(['02 Jan 2026 10:00:00.123', text]))} {message}"
    if kind == 5:
        return f"{draw(st.sampled_from(['Error 111', 'Timeout']))} connecting to {text}. {text}"
    if kind == 6:
        return f"{n} of {n} channels over capacity in group {name}"
    if kind == 7:
        return f"{stamp} {draw(st.sampled_from(['INFO', 'ERROR', 'CRITICAL']))} {draw(_logfmt())}"
    if kind == 8:
        return draw(_logfmt())
    if kind == 9:
        return draw(_json_record())
    if kind == 10:
        return draw(
            st.sampled_from(
                [
                    "Traceback (most recent call last):",
                    '  File "x.py", line 1',
                    "KeyError: 'x'",
                    "}",
                    "  [queues]",
                    "  .> celery  exchange=celery(direct) key=celery",
                ]
            )
        )
    return text


@st.composite
def long_line(draw: st.DrawFn) -> str:
    """A line far past the engine's 16 KB split, or one huge value in an app line."""
    body = draw(enormous_text()).replace("\n", " ")
    return draw(
        st.sampled_from([body, f"conversation_id={body}", f'{{"message": "{body[:20_000]}"}}'])
    )


def good_line(tag: int) -> str:
    """An app's logfmt line that always names its conversation (the record to find again)."""
    return f"2026-01-02 10:00:0{tag % 10},000 INFO ws connected conversation_id={GOOD_PREFIX}{tag}"


def framed(lines: list[tuple[str, str]], framing: str) -> str:
    """``(engine stamp, line)`` pairs as one file's text in ``framing``."""
    out = []
    for stamp, line in lines:
        if framing == "compose":
            out.append(f"web-1  | {stamp} {line}")
        elif framing == "docker":
            out.append(f"{stamp} {line}")
        elif framing == "json-file":
            out.append(json.dumps({"log": line + "\n", "stream": "stdout", "time": stamp}))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def file_name(framing: str) -> str:
    """A name the log reader picks for each framing (json-file logs are `<id>-json.log`)."""
    return {"json-file": "abc123-json.log", "plain": "web.log"}.get(framing, f"{framing}.log")
