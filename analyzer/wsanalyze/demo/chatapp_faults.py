"""The chat app's faults, each made to happen for real: how a client provokes it.

``FAULTS[cause]`` says which frames one client connection sends, with which
token and ``converse`` options, and which variables the worker needs::

    stack.run_scenario(FAULTS["consumer_gone"])

``demo.run`` turns these into the chat scenarios the demo and the end-to-end
tests play, each with the verdict it must get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLOSED_REDIS_URL", "FAULTS", "ChatAppFault"]

CLOSED_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused


@dataclass(frozen=True)
class ChatAppFault:
    """One way a message fares on the example chat app, made to happen for real.

    ``messages`` are sent by one client connection with a token of kind
    ``token`` (one of ``stack.TOKEN_KINDS``) and the extra ``converse`` kwargs in
    ``client``. A fault with ``worker_env`` needs its own stack whose worker
    gets those variables; the others run on any stack of a layer in ``layers``.
    """

    cause: str
    description: str
    messages: tuple[str, ...] = ("What is the refund policy?",)
    token: str = "valid"
    client: Mapping[str, Any] = field(default_factory=dict)
    worker_env: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[str, ...] = ("core", "pubsub")

    @property
    def needs_own_stack(self) -> bool:
        return bool(self.worker_env)


FAULTS: dict[str, ChatAppFault] = {
    fault.cause: fault
    for fault in (
        ChatAppFault("ok", "a healthy conversation: every chunk, then done"),
        ChatAppFault("auth_rejected", "expired token: accepted, then closed 4001", token="expired"),
        ChatAppFault(
            "origin_rejected",
            "a browser on another site: handshake refused, HTTP 403",
            client={"origin": "https://evil.example"},
        ),
        ChatAppFault(
            "rate_limited", "a burst of 11 frames (limit 10 per 10 s): closed 4004", ("hi",) * 11
        ),
        ChatAppFault(
            "invalid_message",
            "a frame that is not JSON: closed 4005",
            (),
            client={"raw_frames": ["this is not json"], "timeout": 5},
        ),
        ChatAppFault(
            "no_worker",
            "task sent to a queue no worker consumes: ack, then nothing",
            ("fault:no_worker",),
            client={"timeout": 1.5},
        ),
        ChatAppFault(
            "task_failed",
            "the agent's tool raises after two chunks",
            ("fault:task_failed",),
            client={"settle": 0.5},
        ),
        ChatAppFault(
            "client_disconnected",
            "the client leaves after two chunks of a one-second answer",
            ("fault:client_disconnected",),
            client={"close_after_chunks": 2},
        ),
        ChatAppFault(
            "consumer_gone",
            "the consumer is out of its group while the answer streams",
            ("fault:consumer_gone",),
            client={"settle": 1.0},
        ),
        ChatAppFault(
            "channel_full",
            "3 x capacity chunks into a stalled consumer: channels_redis drops the overflow",
            ("fault:channel_full",),
            client={"settle": 0.5, "settle_once_streaming": True, "timeout": 20},
            layers=("core",),
        ),
        ChatAppFault(
            "consumer_error",
            "a tool-call chunk the handler cannot handle: KeyError, close 1011",
            ("fault:consumer_error",),
            client={"timeout": 5},
        ),
        ChatAppFault(
            "channel_layer_unavailable",
            "the worker's channel layer points at a closed port: group_send raises",
            client={"settle": 1.0},
            worker_env={"CHAT_LAYER_URL": CLOSED_REDIS_URL},
        ),
        ChatAppFault(
            "layer_mismatch",
            "the worker uses another layer prefix: group_send finds nobody",
            client={"settle": 1.0},
            worker_env={"CHAT_LAYER_PREFIX": "agents"},
        ),
    )
}
