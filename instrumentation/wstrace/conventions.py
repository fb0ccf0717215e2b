"""The evidence vocabulary shared by the instrumentation and the analyzer.

Everything a span written by wstrace can say is named here: attribute keys,
hop names, event names, cause codes and the default close-code table. The
analyzer imports this module, so it must stay free of Django, Channels,
Celery and OpenTelemetry imports.

Span shape (see docs/evidence.md for the full table):

* one trace per WebSocket connection: ``ws.connect`` is the root; ``ws.auth``,
  ``ws.accept``/``ws.close`` and every ``ws.receive`` hang under it;
* a client message's chain continues the same trace across processes:
  ``ws.receive`` -> ``ws.enqueue`` (Celery publish) -> ``ws.task`` (Celery run,
  another process) -> ``ws.publish`` (channel-layer send/group_send or a raw
  Redis PUBLISH) -> ``ws.deliver`` (the consumer's handler, back in the web
  process) -> ``ws.send`` (the frame written to the client);
* ``ws.disconnect`` records the end of a connection.
"""

from __future__ import annotations

from typing import Final

# --- attribute keys (contract) ----------------------------------------------
CONVERSATION_ID: Final = "ws.conversation_id"
CONNECTION_ID: Final = "ws.connection_id"
MESSAGE_ID: Final = "ws.message_id"
HOP: Final = "ws.hop"
SEQ: Final = "ws.seq"
CLOSE_CODE: Final = "ws.close_code"
CAUSE: Final = "ws.cause"

# --- attribute keys (wstrace extensions) -------------------------------------
EVENT: Final = "ws.event"
"""What happened within a hop: see the ``EV_*`` names below."""
CLOSED_BY: Final = "ws.closed_by"  # "server" | "client"
ACCEPTED: Final = "ws.accepted"  # bool: was the handshake accepted before this close
HANDSHAKE_REJECTED: Final = "ws.handshake_rejected"  # bool: close before accept (HTTP 403)
PATH: Final = "ws.path"  # request path, never the query string
ORIGIN: Final = "ws.origin"
ORIGIN_ALLOWED: Final = "ws.origin_allowed"  # bool, when an origin validator ran
USER_AUTHENTICATED: Final = "ws.user_authenticated"  # bool
USER_ID: Final = "ws.user_id"
CONSUMER: Final = "ws.consumer"  # dotted class name of the consumer
HANDLER: Final = "ws.handler"  # handler method a message was dispatched to
MESSAGE_TYPE: Final = "ws.message_type"  # channel-layer message "type"
CHANNEL: Final = "ws.channel"  # channel-layer channel name of the consumer / target
GROUP: Final = "ws.group"  # channel-layer group name
MEMBERS: Final = "ws.group_members"  # int: members the layer found for group_send
RECEIVERS: Final = "ws.publish_receivers"  # int: PUBLISH return value (pub/sub)
OVER_CAPACITY: Final = "ws.over_capacity"  # int: channels that refused the message
CAPACITY: Final = "ws.capacity"  # int: layer capacity for the channel
LAYER: Final = "ws.layer"  # short fingerprint of the layer identity
LAYER_DESC: Final = "ws.layer_desc"  # readable identity, credentials removed
LAYER_BACKEND: Final = "ws.layer_backend"  # class path of the channel layer
FRAME_BYTES: Final = "ws.frame_bytes"  # int: size of a sent/received frame
TASK_NAME: Final = "ws.task_name"
TASK_ID: Final = "ws.task_id"
QUEUE: Final = "ws.queue"  # queue / routing key a task was sent to or taken from
QUEUES: Final = "ws.queues"  # list[str]: queues a worker consumes
WORKER: Final = "ws.worker"  # worker hostname
RETRIES: Final = "ws.retries"  # int
TASK_STATE: Final = "ws.task_state"  # SUCCESS / FAILURE / RETRY
BODY: Final = "ws.body"  # only when RECORD_BODIES is on
FRAME_TYPE: Final = "ws.frame_type"  # the client frame's own "type" field (receive)
EXPECTS_ANSWER: Final = "ws.expects_answer"  # bool, only when WSTRACE declares answered types
APP_MESSAGE_ID: Final = "ws.app_message_id"  # the id the app itself put in a frame
CONVERSATION_SOURCE: Final = "ws.conversation_source"  # route | pattern | resolver | path
ROUTE: Final = "ws.route"  # the URL route pattern that matched (no values)
PAYLOAD_HASH: Final = "ws.payload_hash"  # raw pub/sub: hash of channel + payload, both sides
REVOKED: Final = "ws.revoked"  # bool: the task was revoked
REVOKE_REASON: Final = "ws.revoke_reason"  # terminated | expired | signal:<name> | revoked

ALL_ATTRIBUTES: Final = tuple(
    value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and value.startswith("ws.")
)

# The attributes the analyzer's event table (wsanalyze.events.SCHEMA) has a column for:
# attribute key -> column name. Span readers fill the columns from these keys; test
# builders write them back. Every other attribute stays in the row's JSON ``attributes``.
ATTRIBUTE_COLUMNS: Final[dict[str, str]] = {
    CONVERSATION_ID: "conversation_id",
    CONNECTION_ID: "connection_id",
    MESSAGE_ID: "message_id",
    HOP: "hop",
    EVENT: "event",
    SEQ: "seq",
    CLOSE_CODE: "close_code",
    CAUSE: "cause",
    CLOSED_BY: "closed_by",
    ACCEPTED: "accepted",
    HANDSHAKE_REJECTED: "handshake_rejected",
    ORIGIN_ALLOWED: "origin_allowed",
    USER_AUTHENTICATED: "user_authenticated",
    GROUP: "group",
    LAYER: "layer",
    MEMBERS: "members",
    RECEIVERS: "receivers",
    OVER_CAPACITY: "over_capacity",
    MESSAGE_TYPE: "message_type",
    TASK_ID: "task_id",
    TASK_NAME: "task_name",
    QUEUE: "queue",
    QUEUES: "queues",
    FRAME_TYPE: "frame_type",
    EXPECTS_ANSWER: "expects_answer",
    APP_MESSAGE_ID: "app_message_id",
    PAYLOAD_HASH: "payload_hash",
    CONVERSATION_SOURCE: "conversation_source",
    ROUTE: "route",
    CHANNEL: "channel",
}

# --- hops (contract), in the order a message travels ----------------------
HOP_CONNECT: Final = "connect"
HOP_AUTH: Final = "auth"
HOP_ACCEPT: Final = "accept"
HOP_DISCONNECT: Final = "disconnect"
HOP_RECEIVE: Final = "receive"
HOP_ENQUEUE: Final = "enqueue"
HOP_TASK: Final = "task"
HOP_PUBLISH: Final = "publish"
HOP_DELIVER: Final = "deliver"
HOP_SEND: Final = "send"

CONNECTION_HOPS: Final = (HOP_CONNECT, HOP_AUTH, HOP_ACCEPT, HOP_DISCONNECT)
MESSAGE_HOPS: Final = (HOP_RECEIVE, HOP_ENQUEUE, HOP_TASK, HOP_PUBLISH, HOP_DELIVER, HOP_SEND)
HOPS: Final = CONNECTION_HOPS + MESSAGE_HOPS

# --- span names -----------------------------------------------------------
SPAN_CONNECT: Final = "ws.connect"
SPAN_AUTH: Final = "ws.auth"
SPAN_ACCEPT: Final = "ws.accept"
SPAN_CLOSE: Final = "ws.close"  # the server closed (or refused) the socket
SPAN_DISCONNECT: Final = "ws.disconnect"  # the connection ended (event from the server)
SPAN_RECEIVE: Final = "ws.receive"
SPAN_ENQUEUE: Final = "ws.enqueue"
SPAN_TASK: Final = "ws.task"
SPAN_PUBLISH: Final = "ws.publish"
SPAN_DELIVER: Final = "ws.deliver"
SPAN_SEND: Final = "ws.send"
SPAN_GROUP_ADD: Final = "ws.group_add"
SPAN_GROUP_DISCARD: Final = "ws.group_discard"
SPAN_WORKER_READY: Final = "ws.worker_ready"
SPAN_DROP: Final = "ws.drop"  # a message the layer discarded on the receiving side
SPAN_REVOKE: Final = "ws.revoke"  # the app asked Celery to revoke a task (attribute ws.task_id)

# --- ws.event values --------------------------------------------------------
EV_CONNECT: Final = "connect"
EV_AUTH: Final = "auth"
EV_ACCEPT: Final = "accept"
EV_CLOSE: Final = "close"
EV_REJECT: Final = "reject"  # close before accept
EV_DISCONNECT: Final = "disconnect"
EV_RECEIVE: Final = "receive"
EV_ENQUEUE: Final = "enqueue"
EV_TASK: Final = "task"
EV_GROUP_SEND: Final = "group_send"
EV_CHANNEL_SEND: Final = "send"
EV_REDIS_PUBLISH: Final = "redis_publish"
EV_DELIVER: Final = "deliver"
EV_SEND: Final = "send"
EV_GROUP_ADD: Final = "group_add"
EV_GROUP_DISCARD: Final = "group_discard"
EV_WORKER_READY: Final = "worker_ready"
EV_BUFFER_OVERFLOW: Final = "buffer_overflow"  # the consumer's receive buffer dropped its oldest
EV_HTTP_REQUEST: Final = "http_request"  # an HTTP request that starts a message (hop receive)
EV_REDIS_MESSAGE: Final = "redis_message"  # a raw pub/sub message read by a subscriber (deliver)
EV_REVOKE: Final = "revoke"  # app.control.revoke(...) called (span ws.revoke)
EV_TASK_REVOKED: Final = "task_revoked"  # Celery's task_revoked signal (span event on ws.task)
EV_TASK_LOST: Final = "task_lost"  # the worker lost the process running the task (SIGKILL, OOM)
# span events (OTel events inside a span)
EV_CHANNEL_FULL: Final = "ws.channel_full"
EV_EXCEPTION: Final = "exception"

# --- causes (contract) -------------------------------------------------------
CAUSES: Final = (
    "ok",
    "auth_rejected",
    "origin_rejected",
    "rate_limited",
    "invalid_message",
    "handshake_rejected",
    "handshake_timeout",
    "no_worker",
    "task_failed",
    "task_stuck",
    "channel_layer_unavailable",
    "channel_full",
    "consumer_gone",
    "layer_mismatch",
    "message_expired",
    "event_loop_blocked",
    "consumer_error",
    "client_disconnected",
    "idle_timeout",
    "send_failed",
    "duplicate_delivery",
    "broker_unavailable",  # enqueue failed: the Celery broker refused or was unreachable
    "task_revoked",  # the task was revoked or terminated (a Stop button, an expiry, a signal)
    "unknown",
)

OUTCOMES: Final = ("delivered", "rejected", "lost", "in_flight")

# --- close codes --------------------------------------------------------------
# The convention of this stack; users override or extend it with
# WSTRACE["CLOSE_CODES"] = {4010: ("auth_rejected", "auth")}.
DEFAULT_CLOSE_CODES: Final[dict[int, tuple[str, str]]] = {
    4001: ("auth_rejected", HOP_AUTH),
    4003: ("origin_rejected", HOP_CONNECT),
    4004: ("rate_limited", HOP_RECEIVE),
    4005: ("invalid_message", HOP_RECEIVE),
    1011: ("consumer_error", HOP_DELIVER),
}

# --- propagation ---------------------------------------------------------------
CARRIER_KEY: Final = "__wstrace__"
"""Reserved key in channel-layer messages; stripped before any handler runs."""
BAGGAGE_KEYS: Final = (CONVERSATION_ID, CONNECTION_ID, MESSAGE_ID)

DEFAULT_CONVERSATION_KWARG: Final = "conversation_id"
# The last path segment: what the analyzer's Daphne log parser takes as a conversation
# from an access line. The instrumentation no longer falls back to it (a connection
# belongs to a conversation only by its route, CONVERSATION_PATTERN or
# CONVERSATION_RESOLVER; docs/verdicts.md).
DEFAULT_CONVERSATION_PATTERN: Final = r"/(?P<conversation_id>[^/?#]+)/?$"

SCOPE_NAME: Final = "wstrace"
