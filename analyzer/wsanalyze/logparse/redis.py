"""Redis server lines and the Redis client errors apps log.

Server (`pid:role DD Mon YYYY HH:MM:SS.mmm level message`, level one of `. - * #`):
ready, shutdown, warnings (`#`), out of memory, and clients cut for their output
buffer (pub/sub subscribers that fell behind).

Client errors (redis-py, written by the web or worker process that hit them):
`Error 111 connecting to redis:6379. Connection refused.`, `Timeout connecting to
server`, `Connection closed by server.`, `OOM command not allowed ...`.
"""

from __future__ import annotations

from wsanalyze.logparse.rules import Rule

_SERVER = r"^(?P<pid>\d+):(?P<role>[XCSM]) (?P<stamp>\d\d \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) "

RULES: tuple[Rule, ...] = (
    Rule(
        "redis_ready",
        "redis",
        "Ready to accept connections",
        _SERVER + r"\* (?P<msg>Ready to accept connections.*)$",
        status="ok",
        priority=10,
    ),
    Rule(
        "redis_shutdown",
        "redis",
        "shutdown",
        _SERVER + r"# (?P<msg>.*shutdown.*)$",
        status="error",
        priority=10,
    ),
    Rule(
        "redis_client_buffer_limit",
        "redis",
        "closed for overcoming of output buffer limits",
        _SERVER + r". (?P<msg>.*closed for overcoming of output buffer limits.*)$",
        status="error",
        priority=10,
    ),
    Rule(
        "redis_oom",
        "redis",
        "maxmemory",
        _SERVER + r". (?P<msg>.*maxmemory.*)$",
        status="error",
        priority=20,
    ),
    Rule("redis_warning", "redis", " # ", _SERVER + r"# (?P<msg>.*)$", priority=40),
    Rule(
        "redis_error",
        "app",
        "connecting to",
        r"(?P<exc>Error \d+ connecting to \S+?\.? .*)$",
        status="error",
        priority=45,
    ),
    Rule(
        "redis_error",
        "app",
        "Timeout connecting to server",
        r"(?P<exc>Timeout connecting to server.*)$",
        status="error",
        priority=45,
    ),
    Rule(
        "redis_error",
        "app",
        "Connection closed by server",
        r"(?P<exc>Connection closed by server.*)$",
        status="error",
        priority=45,
    ),
    Rule(
        "redis_error",
        "app",
        "OOM command not allowed",
        r"(?P<exc>OOM command not allowed.*)$",
        status="error",
        priority=45,
    ),
)
