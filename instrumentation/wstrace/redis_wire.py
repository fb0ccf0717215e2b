"""What redis-py puts on the wire, as both sides of a raw PUBLISH see it.

Raw PUBLISH carries no trace context (the payload is the app's own bytes, untouched),
so the analyzer pairs a subscriber's ws.deliver with its ws.publish by a digest of the
bytes redis-py sends, computed the same way on both sides. Channels that are Celery's or
Redis' own (results, events, pidbox, keyspace notifications) are not the app's traffic.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_INFRASTRUCTURE = ("celery-task-meta-", "celeryev", "pidbox", "__keyspace", "__keyevent")
# One search instead of a loop of substring tests: this runs for every raw message read.
_INFRASTRUCTURE_TEXT = re.compile("|".join(re.escape(m) for m in _INFRASTRUCTURE))
_INFRASTRUCTURE_BYTES = re.compile(b"|".join(re.escape(m.encode()) for m in _INFRASTRUCTURE))


def is_infrastructure(channel: Any) -> bool:
    """Whether ``channel`` is Celery's or Redis' own (events, results, pidbox, keyspace)."""
    if isinstance(channel, bytes):
        return _INFRASTRUCTURE_BYTES.search(channel) is not None
    return _INFRASTRUCTURE_TEXT.search(str(channel)) is not None


# Raw PUBLISH carries no trace context (the payload is the app's own bytes, untouched), so
# the analyzer pairs a subscriber's ws.deliver with its ws.publish by this digest instead.
_DEFAULT_ENCODING = ("utf-8", "strict")  # redis-py's defaults
_BUFFERS = (bytes, bytearray, memoryview)
_NUMBERS = (int, float)


def wire_encoding(client: Any) -> tuple[str, str]:
    """The (encoding, errors) redis-py uses to turn a str into bytes for ``client``.

    ``PubSub`` and the cluster clients hold an ``Encoder``; ``Redis``/``Pipeline`` keep
    the settings in their pool's connection kwargs (``get_encoder()`` would build an
    ``Encoder`` per call).
    """
    encoder = getattr(client, "encoder", None)
    if encoder is not None:
        return (
            getattr(encoder, "encoding", "utf-8"),
            getattr(encoder, "encoding_errors", "strict"),
        )
    settings = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if type(settings) is not dict:
        return _DEFAULT_ENCODING
    return settings.get("encoding", "utf-8"), settings.get("encoding_errors", "strict")


def payload_hash(
    channel: Any, payload: Any, encoding: str = "utf-8", errors: str = "strict"
) -> str | None:
    """16 hex digits of blake2b(channel + NUL + payload) over the bytes redis-py sends.

    None for a value redis-py itself refuses (bool, None, other objects): that
    PUBLISH raises anyway. Nothing is copied beyond what encoding a str costs.
    """
    channel_bytes = _wire_bytes(channel, encoding, errors)
    payload_bytes = _wire_bytes(payload, encoding, errors)
    if channel_bytes is None or payload_bytes is None:
        return None
    digest = hashlib.blake2b(channel_bytes, digest_size=8)
    digest.update(b"\0")
    digest.update(payload_bytes)
    return digest.hexdigest()


def _wire_bytes(value: Any, encoding: str, errors: str) -> Any:
    """What ``redis._parsers.encoders.Encoder.encode`` makes of ``value`` (None: it raises)."""
    kind = type(value)
    if kind is bytes:
        return value
    if kind is str:
        return value.encode(encoding, errors)
    if isinstance(value, _BUFFERS):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBERS):
        return repr(value).encode()
    if isinstance(value, str):
        return value.encode(encoding, errors)
    return None
