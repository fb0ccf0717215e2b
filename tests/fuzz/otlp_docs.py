"""OTLP/JSON documents for fuzzing: good spans to find again, hostile ones around them.

Good spans carry the conversation ``conv-good-<tag>``: a test knows how many of
each it wrote and checks that every one is read back, whatever sits beside it.
Hostile spans start as a well-formed span of ``conv-bad`` and have any of their
fields, attributes or enclosing objects replaced with a hostile value.
"""

from __future__ import annotations

import copy

from hypothesis import strategies as st
from wsanalyze.verdicts.testing import Trace, otlp_span
from wstrace import conventions as C

from .hostile import (
    anything,
    encode,
    floats,
    ints,
    nested,
    numeric_text,
    raw_numbers,
    texts,
)

GOOD_PREFIX = "conv-good-"


def good_spans(tag: int) -> list[dict]:
    """A short healthy conversation ``conv-good-<tag>`` as OTLP spans (unique span ids)."""
    t = Trace(f"{GOOD_PREFIX}{tag}")
    t.connect(f"k{tag}")
    t.message(f"m{tag}", f"k{tag}", 10, chunks=2)
    spans = [otlp_span(row) for row in t.rows]
    for span in spans:  # Trace numbers ids from 1: make them unique per tag
        for key in ("spanId", "parentSpanId"):
            if key in span:
                span[key] = f"{tag:06x}{span[key][6:]}"
        span["traceId"] = f"{tag:08x}{span['traceId'][8:]}"
    return spans


GOOD_SPANS = len(good_spans(0))


def resource(service: object = "web") -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def document(spans: list, service: object = "web") -> dict:
    return {"resourceSpans": [{"resource": resource(service), "scopeSpans": [{"spans": spans}]}]}


def _base_span() -> dict:
    t = Trace("conv-bad")
    t.receive("m-bad", "k-bad", 5)
    return otlp_span(t.rows[0])


_BASE = _base_span()

hex_ids = st.integers(0, 64).flatmap(
    lambda n: st.text("0123456789abcdefABCDEF", min_size=n, max_size=n)
)
ids = (
    hex_ids
    | st.text(max_size=40)
    | st.sampled_from(
        ["", "AAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAA==", "-_-_-_-_-_-_", "0" * 16, "0" * 32]
    )
    | anything
)
stamps = ints | ints.map(str) | floats | raw_numbers | numeric_text | anything


def _any_value(inner: st.SearchStrategy) -> st.SearchStrategy:
    """An OTLP AnyValue object whose content may be anything (``inner``: nested AnyValues)."""
    return st.one_of(
        st.builds(lambda v: {"stringValue": v}, texts | anything),
        st.builds(lambda v: {"intValue": v}, ints | ints.map(str) | numeric_text | anything),
        st.builds(lambda v: {"doubleValue": v}, floats | raw_numbers | numeric_text | anything),
        st.builds(lambda v: {"boolValue": v}, st.booleans() | anything),
        st.builds(lambda v: {"bytesValue": v}, anything),
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
        st.builds(lambda v: {"arrayValue": v}, anything),
        st.builds(lambda kvs: {"kvlistValue": {"values": kvs}}, st.lists(_kv(inner), max_size=3)),
        st.builds(lambda v: {"kvlistValue": v}, anything),
        st.builds(lambda d: {"arrayValue": {"values": d}}, st.just(nested(300, "list"))),
        st.just({}),
        anything,
    )


attribute_keys = st.sampled_from([*C.ATTRIBUTE_COLUMNS, "service.name", "exception.type"]) | texts


def _kv(value: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(lambda k, v: {"key": k, "value": v}, attribute_keys, value) | anything


any_values = st.deferred(lambda: _any_value(any_values))
key_values = _kv(any_values)

# field -> what may stand in it instead of a good value
_FIELDS: dict[str, st.SearchStrategy] = {
    "traceId": ids,
    "spanId": ids,
    "parentSpanId": ids,
    "startTimeUnixNano": stamps,
    "endTimeUnixNano": stamps,
    "name": texts | anything,
    "kind": st.sampled_from([0, 1, 5, 6, "SPAN_KIND_SERVER", "x"]) | anything,
    "attributes": st.lists(key_values, max_size=5) | anything,
    "events": st.lists(
        st.builds(
            lambda n, a: {"name": n, "attributes": a},
            st.sampled_from([C.EV_EXCEPTION, "x"]) | anything,
            st.lists(key_values, max_size=3) | anything,
        )
        | anything,
        max_size=3,
    )
    | anything,
    "links": st.lists(st.builds(lambda i: {"spanId": i}, ids) | anything, max_size=3) | anything,
    "status": st.builds(lambda c, m: {"code": c, "message": m}, anything, texts | anything)
    | anything,
}


@st.composite
def hostile_span(draw: st.DrawFn) -> object:
    """A span of conv-bad with some fields replaced, attributes added, or no span at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(anything)
    span = copy.deepcopy(_BASE)
    for field in draw(st.sets(st.sampled_from(list(_FIELDS)), min_size=1, max_size=4)):
        span[field] = draw(_FIELDS[field])
    if isinstance(span.get("attributes"), list) and draw(st.booleans()):
        span["attributes"] = [*_BASE["attributes"], *draw(st.lists(key_values, max_size=3))]
    if draw(st.booleans()):  # a field no producer writes
        span[draw(st.text(max_size=10))] = draw(anything)
    return span


@st.composite
def hostile_resource_spans(draw: st.DrawFn, spans: list | None = None) -> object:
    """A ResourceSpans of hostile spans (with ``spans`` among them), or garbage in its place."""
    hostile = draw(st.lists(hostile_span(), min_size=1, max_size=3))
    if spans is not None:
        hostile[draw(st.integers(0, len(hostile))) : 0] = spans
        return {"resource": resource(), "scopeSpans": [{"spans": hostile}]}
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return draw(anything)
    if shape == 1:
        return {"resource": draw(anything), "scopeSpans": [{"spans": hostile}]}
    if shape == 2:
        return {"resource": resource(), "scopeSpans": draw(anything)}
    if shape == 3:
        return {"resource": resource(), "scopeSpans": [draw(anything), {"spans": hostile}]}
    if shape == 4:
        return {
            "resource": resource(draw(anything)),
            "instrumentationLibrarySpans": [{"spans": hostile}],
        }
    return {"resource": resource(), "scopeSpans": [{"spans": hostile}]}


@st.composite
def hostile_document(draw: st.DrawFn) -> object:
    """A whole line's document: OTLP-shaped with hostile parts, or not OTLP at all."""
    shape = draw(st.integers(0, 6))
    if shape == 0:
        return draw(anything)
    if shape == 1:
        return {"resourceSpans": draw(anything)}
    if shape == 2:
        return {"batches": draw(st.lists(hostile_resource_spans(), max_size=2))}
    if shape == 3:  # Jaeger api/v3 and Tempo v2 wrap the same list
        wrapper = draw(st.sampled_from(["result", "trace"]))
        return {wrapper: {"resourceSpans": draw(st.lists(hostile_resource_spans(), max_size=2))}}
    if shape == 4:
        return nested(
            draw(st.sampled_from([1_100, 5_000, 50_000])), draw(st.sampled_from(["list", "dict"]))
        )
    return {"resourceSpans": draw(st.lists(hostile_resource_spans(), min_size=1, max_size=3))}


@st.composite
def raw_line(draw: st.DrawFn) -> str:
    """A line that is not one JSON document: truncated, two glued, binary, or text."""
    shape = draw(st.integers(0, 4))
    if shape == 0:
        text = encode(document(good_spans(999)))
        return text[: draw(st.integers(0, len(text) - 1))]
    if shape == 1:
        return '{"resourceSpans": []}{"resourceSpans": []}'
    if shape == 2:
        return draw(st.text(max_size=200)).replace("\n", " ")
    if shape == 3:
        return "\x00" * draw(st.integers(1, 100))
    return draw(
        st.sampled_from(["{", "}", "[]", "null", "1", '"x"', "{}", '{"resourceSpans": null}'])
    )
