"""Facts per message and per connection, aggregated from the event table.

Everything here is a lazy polars expression over the one table: the rules in
``verdicts.rules`` are conditions over the columns these functions produce.
One row per (conversation, message) (``messages``) and per (conversation,
connection) (``connections``), plus the facts of the whole table a message is
judged against (``context``: workers, queues, revokes, layers).
"""

from __future__ import annotations

from ._rows import confidence_name, errored, hop_is
from .connections import connection_facts
from .context import (
    consumed_queues,
    consumer_layers,
    frame_types,
    revokers,
    send_services,
    worker_logs,
)
from .messages import MESSAGE_HOPS, log_evidence, message_facts

__all__ = [
    "MESSAGE_HOPS",
    "confidence_name",
    "connection_facts",
    "consumed_queues",
    "consumer_layers",
    "errored",
    "frame_types",
    "hop_is",
    "log_evidence",
    "message_facts",
    "revokers",
    "send_services",
    "worker_logs",
]
