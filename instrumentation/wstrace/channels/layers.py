"""The channel layer: publish (group_send/send), group membership.

The silent drops of this stack happen here, so each publish records the facts
that reveal them, taken from inside the layer's own work (no extra Redis
calls): how many channels the group had (core layer), how many subscribers
received a PUBLISH (pub/sub layer, raw redis), how many channels were over
capacity, and a fingerprint of the layer identity (backend, hosts, db, prefix;
never credentials) that is also recorded when a consumer joins or leaves a
group. The trace context travels inside the message under the reserved key.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, current, runtime
from wstrace import conventions as c
from wstrace.channels.layer_identity import identity
from wstrace.redis_wire import is_infrastructure, payload_hash, wire_encoding
from wstrace.runtime import STATE


@dataclass
class PublishFacts:
    """What the layer learned while publishing one message."""

    members: int | None = None
    receivers: int | None = None
    over_capacity: int = 0
    capacity_checked: bool = False  # the layer's capacity check ran where we could see it


FACTS: ContextVar[PublishFacts | None] = ContextVar("wstrace_publish_facts", default=None)


class SequenceCounter:
    """Chunk numbers per (message id, target): 1, 2, 3 … in publish order."""

    def __init__(self, limit: int = 10_000) -> None:
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def next(self, message_id: str, target: str) -> int:
        key = (message_id, target)
        with self._lock:
            value = self._counts.pop(key, 0) + 1
            self._counts[key] = value
            if len(self._counts) > self._limit:
                self._counts.popitem(last=False)
        return value


SEQUENCES = SequenceCounter()


# --- publish ----------------------------------------------------------------------
def publisher(event: str, target_name: str) -> Any:
    """Wrapper factory for ``group_send(group, message)`` / ``send(channel, message)``."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not STATE["active"]:
            return await wrapped(*args, **kwargs)
        outer = FACTS.get()
        if outer is not None:
            # A layer's own send() inside its group_send (the in-memory layer): the
            # group_send's span records it, including the ChannelFull it swallows.
            return await _inner_send(wrapped, args, kwargs, outer)
        target = args[0] if args else kwargs.get(target_name)
        message = args[1] if len(args) > 1 else kwargs.get("message")
        # runtime.shield, inlined here and at the end: this runs for every chunk.
        try:
            started = _begin_publish(instance, event, target, message)
        except Exception as exc:
            runtime.report_once("publish", exc)
            started = None
        if started is None:
            return await wrapped(*args, **kwargs)
        span, outgoing, facts = started
        facts_token = FACTS.set(facts)
        ctx_token = current.attach(current.with_span(span))
        returned = False
        try:
            result = await wrapped(target, outgoing, *args[2:])
            returned = True
            return result
        except Exception as exc:
            runtime.shield("publish error", _record_failure, span, exc)
            raise
        finally:
            current.detach(ctx_token)
            FACTS.reset(facts_token)
            if returned and event == c.EV_CHANNEL_SEND and _has_capacity(instance):
                # A capacity layer's send() raises ChannelFull when full: returning means it fit.
                facts.capacity_checked = True
            try:
                _end_publish(span, facts)
            except Exception as exc:
                runtime.report_once("publish end", exc)

    return wrapper


def _has_capacity(layer: Any) -> bool:
    return isinstance(getattr(layer, "capacity", None), int)


async def _inner_send(wrapped: Any, args: tuple, kwargs: dict, facts: PublishFacts) -> Any:
    try:
        result = await wrapped(*args, **kwargs)
    except Exception as exc:
        if type(exc).__name__ == "ChannelFull":
            facts.over_capacity += 1
            facts.capacity_checked = True
        raise
    facts.capacity_checked = True
    return result


def _begin_publish(
    layer: Any, event: str, target: Any, message: Any
) -> tuple[trace.Span, Any, PublishFacts] | None:
    if type(message) is not dict and not isinstance(message, Mapping):
        return None
    ids = current.ids()
    target_name = str(target)
    attributes: dict[str, Any] = {
        **ids,
        c.HOP: c.HOP_PUBLISH,
        c.EVENT: event,
        (c.GROUP if event == c.EV_GROUP_SEND else c.CHANNEL): target_name,
        **identity(layer),
    }
    kind = message.get("type")
    if kind is not None:
        attributes[c.MESSAGE_TYPE] = str(kind)
    capacity = getattr(layer, "capacity", None)
    if isinstance(capacity, int):
        attributes[c.CAPACITY] = capacity
    seq = None
    if c.MESSAGE_ID in ids:
        seq = SEQUENCES.next(ids[c.MESSAGE_ID], target_name)
        attributes[c.SEQ] = seq
    span = runtime.spans().start_child(c.SPAN_PUBLISH, current.get(), SpanKind.PRODUCER, attributes)
    carried = carrier.message_carrier(span.get_span_context(), ids)
    if seq is not None:
        carried[carrier.SEQ_FIELD] = str(seq)
    outgoing = dict(message)  # the caller's dict stays as it was (it may send it again)
    outgoing[c.CARRIER_KEY] = carried
    facts = PublishFacts()
    if event == c.EV_GROUP_SEND and "InMemory" in type(layer).__name__:
        # The in-memory layer keeps groups in this process; its count is exact here.
        facts.members = len(getattr(layer, "groups", {}).get(target, {}))
    return span, outgoing, facts


def _record_failure(span: trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    name = type(exc).__name__
    if name == "ChannelFull":
        cause = "channel_full"
    elif _is_connection_error(exc):
        cause = "channel_layer_unavailable"
    else:
        cause = None
    if cause:
        span.set_attribute(c.CAUSE, cause)
    span.set_status(Status(StatusCode.ERROR, f"{name}: {exc}"))


def _is_connection_error(exc: BaseException) -> bool:
    for klass in type(exc).__mro__:
        if klass.__name__ in {"ConnectionError", "TimeoutError", "OSError", "BusyLoadingError"}:
            return True
    text = str(exc).lower()
    return "connect" in text or "oom command not allowed" in text


def _end_publish(span: trace.Span, facts: PublishFacts) -> None:
    if facts.members is not None:
        span.set_attribute(c.MEMBERS, facts.members)
    if facts.receivers is not None:
        span.set_attribute(c.RECEIVERS, facts.receivers)
    if facts.capacity_checked and not facts.over_capacity:
        # Evidence too: a chunk that was not refused and still never arrived was lost
        # somewhere else (the analyzer will not call that channel_full).
        span.set_attribute(c.OVER_CAPACITY, 0)
    if facts.over_capacity:
        span.set_attribute(c.OVER_CAPACITY, facts.over_capacity)
        span.set_attribute(c.CAUSE, "channel_full")
        span.add_event(c.EV_CHANNEL_FULL, {c.OVER_CAPACITY: facts.over_capacity})
        span.set_status(
            Status(StatusCode.ERROR, f"{facts.over_capacity} channel(s) over capacity: dropped")
        )
    span.end()


# --- facts from inside the layer -------------------------------------------------------
def channel_keys_mapped(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``RedisChannelLayer._map_channel_keys_to_connection(channel_names, message)``."""
    facts = FACTS.get()
    if facts is not None:
        names = args[0] if args else kwargs.get("channel_names")
        facts.members = len(names) if names is not None else None
    return wrapped(*args, **kwargs)


def capacity_script(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for redis-py ``eval``: inside group_send it returns channels over capacity."""
    facts = FACTS.get()
    result = wrapped(*args, **kwargs)
    if facts is None or not inspect.isawaitable(result):
        return result
    return _count_over_capacity(result, facts)


async def _count_over_capacity(pending: Any, facts: PublishFacts) -> Any:
    result = await pending
    if isinstance(result, int):
        facts.over_capacity += result
        facts.capacity_checked = True
    return result


def redis_publish(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for redis-py ``publish`` (sync and asyncio): the receivers count."""
    if not runtime.active():
        return wrapped(*args, **kwargs)
    facts = FACTS.get()
    channel = args[0] if args else kwargs.get("channel")
    if facts is None and (not current.ids() or is_infrastructure(channel)):
        # Celery events/results, cache invalidation …: not a conversation's evidence.
        return wrapped(*args, **kwargs)
    span = None
    if facts is None:
        payload = args[1] if len(args) > 1 else kwargs.get("message")
        span = runtime.shield("redis publish", _raw_publish_span, instance, channel, payload)
    try:
        result = wrapped(*args, **kwargs)
    except Exception as exc:
        if span is not None:
            _record_failure(span, exc)
            span.end()
        raise
    if inspect.isawaitable(result):
        return _await_receivers(result, facts, span)
    _note_receivers(result, facts, span)
    return result


async def _await_receivers(
    pending: Any, facts: PublishFacts | None, span: trace.Span | None
) -> Any:
    try:
        result = await pending
    except Exception as exc:
        if span is not None:
            _record_failure(span, exc)
            span.end()
        raise
    _note_receivers(result, facts, span)
    return result


def _note_receivers(result: Any, facts: PublishFacts | None, span: trace.Span | None) -> None:
    count = result if isinstance(result, int) else None
    if facts is not None:
        facts.receivers = count
    elif span is not None:
        if count is not None:
            span.set_attribute(c.RECEIVERS, count)
        span.end()


def _raw_publish_span(client: Any, channel: Any, payload: Any) -> trace.Span:
    ids = current.ids()
    name = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else str(channel)
    attributes: dict[str, Any] = {
        **ids,
        c.HOP: c.HOP_PUBLISH,
        c.EVENT: c.EV_REDIS_PUBLISH,
        c.CHANNEL: name,
    }
    if c.MESSAGE_ID in ids:
        attributes[c.SEQ] = SEQUENCES.next(ids[c.MESSAGE_ID], name)
    digest = payload_hash(channel, payload, *wire_encoding(client))
    if digest is not None:
        attributes[c.PAYLOAD_HASH] = digest
    return runtime.tracer().start_span(
        c.SPAN_PUBLISH, kind=SpanKind.PRODUCER, attributes=attributes
    )


def buffer_put(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``channels_redis.core.BoundedQueue.put_nowait``: it drops the oldest when full."""
    if runtime.active() and instance.full():
        runtime.shield("buffer overflow", _record_drop, instance)
    return wrapped(*args, **kwargs)


def _record_drop(queue: Any) -> None:
    pending = getattr(queue, "_queue", None)  # asyncio.Queue's deque; [0] is what gets dropped
    oldest = pending[0] if pending else None
    carried = oldest.get(c.CARRIER_KEY) if isinstance(oldest, Mapping) else None
    parent = carrier.extract(carried) if carried else context.Context()
    attributes: dict[str, Any] = {
        **current.ids(parent),
        c.HOP: c.HOP_DELIVER,
        c.EVENT: c.EV_BUFFER_OVERFLOW,
        c.CAUSE: "channel_full",
        c.CAPACITY: int(getattr(queue, "maxsize", 0) or 0),
    }
    if isinstance(oldest, Mapping):
        if oldest.get("type") is not None:
            attributes[c.MESSAGE_TYPE] = str(oldest.get("type"))
        if oldest.get("__asgi_channel__"):
            attributes[c.CHANNEL] = str(oldest.get("__asgi_channel__"))
    seq = carried.get(carrier.SEQ_FIELD) if isinstance(carried, Mapping) else None
    if seq is not None and str(seq).isdigit():
        attributes[c.SEQ] = int(seq)
    span = runtime.tracer().start_span(c.SPAN_DROP, context=parent, attributes=attributes)
    span.set_status(Status(StatusCode.ERROR, "receive buffer full: oldest message dropped"))
    span.end()


async def receiver(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for a layer's ``receive``: the reserved key never leaves the layer."""
    message = await wrapped(*args, **kwargs)
    is_mapping = type(message) is dict or isinstance(message, Mapping)  # the ABC check is slow
    if is_mapping and c.CARRIER_KEY in message:
        return carrier.PARKED.park(message)
    return message


# --- membership ------------------------------------------------------------------------
def membership(span_name: str, event: str) -> Any:
    """Wrapper factory for ``group_add(group, channel)`` / ``group_discard``."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if not runtime.active():
            return await wrapped(*args, **kwargs)
        group = args[0] if args else kwargs.get("group")
        channel = args[1] if len(args) > 1 else kwargs.get("channel")
        span = runtime.shield(
            "membership", _membership_span, instance, span_name, event, group, channel
        )
        if span is None:
            return await wrapped(*args, **kwargs)
        try:
            return await wrapped(*args, **kwargs)
        except Exception as exc:
            runtime.shield("membership error", _record_failure, span, exc)
            raise
        finally:
            span.end()

    return wrapper


def _membership_span(layer: Any, name: str, event: str, group: Any, channel: Any) -> trace.Span:
    enclosing = trace.get_current_span()
    hop = getattr(enclosing, "attributes", {}).get(c.HOP) if enclosing.is_recording() else None
    attributes: dict[str, Any] = {
        **current.ids(),
        c.EVENT: event,
        c.GROUP: str(group),
        c.CHANNEL: str(channel),
        **identity(layer),
    }
    if hop:
        attributes[c.HOP] = hop
    return runtime.tracer().start_span(name, attributes=attributes)
