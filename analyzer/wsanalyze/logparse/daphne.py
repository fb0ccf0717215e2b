"""Daphne: WebSocket access lines and the server's own log lines.

Access lines (daphne/access.py, written to stdout, local time, whole seconds):

    127.0.0.1:55546 - - [27/Nov/2026:17:19:23] "WSCONNECT /ws/chat/c-ok/" - -

`WSCONNECTING` → handshake began (hop connect); `WSCONNECT` → accepted (hop accept);
`WSREJECT` → refused before accept, the client sees HTTP 403 / 1006 (hop connect);
`WSDISCONNECT` → the socket closed (hop disconnect). The path's last segment is the
conversation id (wstrace.conventions.DEFAULT_CONVERSATION_PATTERN), marked
confidence "path". Channels' runserver writes `WebSocket HANDSHAKING /path [client]`
instead; both are read.

Server log (stderr, `%(asctime)-15s %(levelname)-8s %(message)s`):
`Exception inside application: <exc>` with its traceback (the consumer crashed: close
1011), and `Application instance ... took too long to shut down and was killed.`
"""

from __future__ import annotations

from wsanalyze.logparse.rules import Rule

_ACCESS = r'^(?P<client>\S+) \S+ \S+ \[(?P<stamp>[^\]]+)\] "{verb} (?P<path>[^" ]*)[^"]*"'
_RUNSERVER = r"WebSocket {verb} (?P<path>\S+) \[(?P<client>[^\]]*)\]"

RULES: tuple[Rule, ...] = (
    Rule(
        "ws_connecting",
        "daphne",
        '"WSCONNECTING ',
        _ACCESS.format(verb="WSCONNECTING"),
        hop="connect",
        priority=10,
    ),
    Rule(
        "ws_connect",
        "daphne",
        '"WSCONNECT ',
        _ACCESS.format(verb="WSCONNECT"),
        hop="accept",
        status="ok",
        facts={"accepted": True},
        priority=10,
    ),
    Rule(
        "ws_reject",
        "daphne",
        '"WSREJECT ',
        _ACCESS.format(verb="WSREJECT"),
        hop="connect",
        status="error",
        cause="handshake_rejected",
        facts={"accepted": False, "handshake_rejected": True, "closed_by": "server"},
        priority=10,
    ),
    Rule(
        "ws_disconnect",
        "daphne",
        '"WSDISCONNECT ',
        _ACCESS.format(verb="WSDISCONNECT"),
        hop="disconnect",
        priority=10,
    ),
    Rule(
        "ws_connecting",
        "daphne",
        "WebSocket HANDSHAKING ",
        _RUNSERVER.format(verb="HANDSHAKING"),
        hop="connect",
        priority=11,
    ),
    Rule(
        "ws_connect",
        "daphne",
        "WebSocket CONNECT ",
        _RUNSERVER.format(verb="CONNECT"),
        hop="accept",
        status="ok",
        facts={"accepted": True},
        priority=11,
    ),
    Rule(
        "ws_reject",
        "daphne",
        "WebSocket REJECT ",
        _RUNSERVER.format(verb="REJECT"),
        hop="connect",
        status="error",
        cause="handshake_rejected",
        facts={"accepted": False, "handshake_rejected": True, "closed_by": "server"},
        priority=11,
    ),
    Rule(
        "ws_disconnect",
        "daphne",
        "WebSocket DISCONNECT ",
        _RUNSERVER.format(verb="DISCONNECT"),
        hop="disconnect",
        priority=11,
    ),
    Rule(
        "app_exception",
        "daphne",
        "Exception inside application",
        r"Exception inside application: ?(?P<exc>.*)$",
        status="error",
        cause="consumer_error",
        facts={"close_code": 1011, "closed_by": "server"},
        priority=20,
    ),
    Rule(
        "app_killed",
        "daphne",
        "took too long to shut down and was killed",
        r"Application instance (?P<instance>.*) for connection (?P<client>\S+) took too long",
        hop="disconnect",
        status="error",
        priority=20,
    ),
)
