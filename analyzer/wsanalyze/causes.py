"""What each cause means, how it shows in the evidence, and how to fix it.

``wsanalyze explain <cause>`` prints these texts; verdicts use ``hint`` as the
fallback fix hint when a rule has nothing more concrete to say.
"""

from __future__ import annotations

from dataclasses import dataclass

from wstrace.conventions import CAUSES


@dataclass(frozen=True)
class CauseInfo:
    """The explanation of one cause code."""

    cause: str
    meaning: str
    signals: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        """JSON view."""
        return {
            "cause": self.cause,
            "meaning": self.meaning,
            "signals": self.signals,
            "fix": self.fix,
        }


_TEXTS: dict[str, tuple[str, str, str]] = {
    "ok": (
        "The message was delivered: every published chunk reached the client.",
        "receive → (enqueue → task → publish → deliver) → send spans, as many sends as publishes.",
        "Nothing to fix.",
    ),
    "auth_rejected": (
        "The connection was refused or closed because the user could not be authenticated "
        "(token missing, invalid or expired).",
        "ws.close with code 4001, or ws.connect refused with ws.user_authenticated=false, "
        "or ws.auth errored with a JWT exception.",
        "Send a valid token (query string or header), refresh it before reconnecting, and make "
        "the auth middleware turn JWT errors into AnonymousUser instead of raising.",
    ),
    "origin_rejected": (
        "The handshake was refused because the Origin header is not allowed.",
        "ws.connect refused (HTTP 403, client sees 1006) with ws.origin_allowed=false, "
        "or close 4003.",
        "Add the exact origin (scheme, host and port) to ALLOWED_HOSTS / the origin "
        "validator's list.",
    ),
    "rate_limited": (
        "The server closed the connection because the client sent too much.",
        "ws.close with code 4004 after a ws.receive.",
        "Slow the client down or raise the rate limit; reconnect with backoff.",
    ),
    "invalid_message": (
        "The consumer refused a frame (bad JSON, missing field, too large).",
        "ws.close with code 4005 after a ws.receive, or a frame over the size limit (1009).",
        "Send the frame shape the consumer expects; validate on the client.",
    ),
    "handshake_rejected": (
        "The connection was closed before accept for a reason other than auth or origin: the "
        "client saw HTTP 403 / 1006 and never got the close code.",
        "ws.connect with ws.handshake_rejected=true, no ws.accept; Daphne WSREJECT.",
        "Accept first and then close with an application code so the client learns why; check "
        "the consumer's connect() and the URL route.",
    ),
    "handshake_timeout": (
        "The connect did not finish within Daphne's websocket_connect_timeout (5 s by default).",
        "WSCONNECTING then WSREJECT about 5 s later; a ws.connect span that lasts that long.",
        "Make connect() fast (no blocking I/O), or raise --websocket_connect_timeout.",
    ),
    "no_worker": (
        "The task was enqueued and never started: no worker consumes its queue, the task is not "
        "registered, or the worker is down.",
        "ws.enqueue with ws.queue, no ws.task; ws.worker_ready spans list the queues "
        "workers consume.",
        "Start a worker for the queue (celery worker -Q <queue>) or align task_routes with the "
        "worker's -Q; make sure the worker imports the task module.",
    ),
    "task_failed": (
        "The Celery task raised: serialization (UUID/datetime in a channel-layer message), "
        "async_to_sync misuse, or an application error.",
        "ws.task (or the ws.publish it made) with status ERROR and an exception event; Celery "
        "'raised unexpected'.",
        "Fix the exception shown in the evidence; send plain JSON-able dicts through the channel "
        "layer; emit a terminal error chunk in a finally block so the client is told.",
    ),
    "task_revoked": (
        "The task was revoked or terminated before it finished its answer: a Stop button, an "
        "expiry, a signal.",
        "ws.task_revoked (Celery's task_revoked signal: terminated / expired / revoked) for the "
        "message's task, and usually a ws.revoke span naming the client frame that asked for it.",
        "Expected when the user pressed Stop; otherwise check who calls revoke(), task expires= "
        "and the worker's signals. Send a terminal 'stopped' frame so the client knows.",
    ),
    "task_stuck": (
        "The task started and never finished (time limit, worker killed, deadlock).",
        "ws.task without an end, or ending with WorkerLostError / TimeLimitExceeded; no more "
        "publishes long before the data ends.",
        "Set soft/hard time limits, catch SoftTimeLimitExceeded to send a terminal chunk, check "
        "the worker's memory (OOM kills).",
    ),
    "channel_layer_unavailable": (
        "The publish failed: the channel layer's Redis was unreachable or refused the command.",
        "ws.publish with status ERROR: ConnectionError / 'Connection refused' / timeout / OOM.",
        "Point CHANNEL_LAYERS at the Redis service name (not localhost inside Docker), check "
        "that Redis is up, use maxmemory-policy noeviction.",
    ),
    "channel_full": (
        "The receiving channel was at capacity, so the layer dropped chunks.",
        "ws.publish with ws.over_capacity > 0 or a ws.channel_full event, or ChannelFull raised; "
        "gaps in delivered ws.seq when the capacity check was not visible (a gap after a check "
        "that refused nothing, ws.over_capacity=0, is unknown at deliver instead).",
        "Batch chunks (send fewer, larger frames), raise the layer's capacity, keep the "
        "consumer's handlers short so it drains its channel.",
    ),
    "consumer_gone": (
        "The answer was published to a group with no live member and no close explains it: "
        "streaming began before the consumer joined, membership expired, the consumer died "
        "without leaving, or it reconnected under a new channel.",
        "ws.publish with ws.group_members=0 (or ws.publish_receivers=0) on the consumer's layer; "
        "no ws.deliver.",
        "Join the group before enqueueing work, key groups by conversation and not by channel, "
        "and replay missed chunks on reconnect.",
    ),
    "layer_mismatch": (
        "Publisher and consumer use different channel layers (prefix, db, hosts, or the in-memory "
        "layer), so the group the worker writes to is not the one the consumer joined.",
        "ws.publish with ws.group_members=0 and a ws.layer different from the consumer's "
        "ws.group_add layer.",
        "Load one CHANNEL_LAYERS setting in web and worker (same hosts, db and prefix); never use "
        "InMemoryChannelLayer across processes.",
    ),
    "message_expired": (
        "The message sat in the channel layer past its expiry (60 s) and was dropped.",
        "A publish and no deliver, with the consumer stalled for longer than the expiry.",
        "Keep consumers responsive; raise the layer's expiry if messages legitimately wait.",
    ),
    "event_loop_blocked": (
        "The consumer's event loop stalled (a sync call in async code), delaying or dropping work.",
        "Long gaps inside receive/deliver spans while every connection of the process stalls.",
        "Use async APIs or sync_to_async; never call blocking SDKs, sleep or the ORM from "
        "async code.",
    ),
    "consumer_error": (
        "The consumer raised while handling the message; Daphne closed the socket with 1011.",
        "ws.deliver or ws.receive with status ERROR and an exception; ws.disconnect with 1011.",
        "Fix the exception in the handler (often a missing handler for a message type: "
        "'chat.chunk' needs a chat_chunk method); the membership leaks after a crash.",
    ),
    "client_disconnected": (
        "The client closed the connection while its answer was still streaming; later chunks "
        "went to an empty group.",
        "ws.disconnect with ws.closed_by=client before a ws.publish that found 0 members.",
        "Expected when users leave; if not, check the client's reconnect logic and replay missed "
        "chunks on reconnect.",
    ),
    "idle_timeout": (
        "A proxy dropped the idle connection (1006 without an application close).",
        "ws.disconnect with 1006, closed by the client side, no ws.close before it.",
        "Keep Daphne's ping interval below the proxy's read timeout (nginx proxy_read_timeout).",
    ),
    "send_failed": (
        "The frame could not be written to the socket.",
        "ws.send with status ERROR.",
        "Check the connection state before sending; the socket was probably already closing.",
    ),
    "duplicate_delivery": (
        "The same task ran twice (broker redelivery after visibility_timeout with acks_late).",
        "Two ws.task spans with one ws.task_id.",
        "Raise the broker's visibility_timeout above the longest task, or make the task "
        "idempotent.",
    ),
    "broker_unavailable": (
        "The task could not be enqueued: the Celery broker refused or was unreachable.",
        "ws.enqueue with status ERROR.",
        "Check CELERY_BROKER_URL and that the broker is up and reachable from the web container.",
    ),
    "unknown": (
        "The evidence ends without an explanation.",
        "The verdict's evidence lists which spans exist and which are missing.",
        "Make sure every process runs wstrace (web and worker) and writes to the store you read.",
    ),
}

CAUSE_INFO: dict[str, CauseInfo] = {
    cause: CauseInfo(cause, *texts) for cause, texts in _TEXTS.items()
}
KNOWN_CAUSES: tuple[str, ...] = tuple(dict.fromkeys((*CAUSES, *CAUSE_INFO)))


def explain(cause: str) -> CauseInfo:
    """The explanation of ``cause``; ``KeyError`` when it is not a known cause."""
    return CAUSE_INFO[cause]


def hint_for(cause: str) -> str:
    """The generic fix hint for ``cause``."""
    info = CAUSE_INFO.get(cause)
    return info.fix if info else CAUSE_INFO["unknown"].fix
