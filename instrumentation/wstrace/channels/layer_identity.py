"""Which channel layer a process uses: a fingerprint of backend, hosts, db and prefix.

Recorded on every publish and on every group join or leave (``ws.layer``,
``ws.layer_desc``), so a worker publishing on another layer than the consumer
listens on is visible. The description never holds credentials: user info of URLs,
passwords and other redis-py options are left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wstrace import conventions as c
from wstrace.redact import redact_url


def identity(layer: Any) -> dict[str, str]:
    """``ws.layer`` / ``ws.layer_desc`` / ``ws.layer_backend`` for a layer instance."""
    cached = getattr(layer, "_wstrace_identity", None)
    if cached is not None:
        return cached
    backend = f"{type(layer).__module__}.{type(layer).__qualname__}"
    desc = _describe(layer)
    fingerprint = hashlib.sha256(desc.encode()).hexdigest()[:12]
    result = {c.LAYER: fingerprint, c.LAYER_DESC: desc, c.LAYER_BACKEND: backend}
    with contextlib.suppress(AttributeError, TypeError):
        object.__setattr__(layer, "_wstrace_identity", result)
    return result


def _describe(layer: Any) -> str:
    name = type(layer).__name__
    if "InMemory" in name:
        # Groups live in one process: two processes never share this layer.
        return f"memory pid={os.getpid()} layer={id(layer):x}"
    family = "redis-pubsub" if "PubSub" in name else "redis"
    shards = getattr(layer, "_shards", None)
    hosts = [getattr(s, "host", s) for s in shards] if shards else getattr(layer, "hosts", [])
    prefix = getattr(layer, "prefix", "")
    described = ",".join(parse_host(h).location() for h in hosts or [])
    return f"{family} {described} prefix={prefix}"


@dataclass(frozen=True)
class RedisHost:
    """One entry of channels_redis ``hosts``, whichever of its forms it was written in.

    ``url`` is set for a URL (the entry itself, or a dict's ``address``), ``sentinel`` for
    a Sentinel entry (its ``master_name``); otherwise ``params`` alone say where (``host``,
    ``port``, ``db``). ``params`` also holds the entry's redis-py options
    (``socket_timeout``, ``password`` …), as ``redis.Redis`` keyword arguments.
    """

    url: str | None = None
    sentinel: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def location(self) -> str:
        """``host:port/db`` (``sentinel:<master>`` for Sentinel), never credentials."""
        if self.url is not None:
            # Parsed after redaction: an unencoded '/' or '[' in a password would otherwise
            # end urlsplit's netloc early (the password's tail lands in the path) or raise.
            safe = redact_url(self.url)
            try:
                parts = urlsplit(safe)
                port = parts.port
            except ValueError:  # several hosts (`h1:1,h2:2`), an odd port: as written
                return safe.split("://", 1)[-1].rsplit("@", 1)[-1] or "?"
            if parts.hostname:  # drop user:password
                db = parts.path.strip("/") or "0"
                return f"{parts.hostname}:{port or 6379}/{db}"
            # a unix socket (`unix://:pw@/run/redis.sock?db=2`): the path, never the user info
            db = parse_qs(parts.query).get("db", ["0"])[0]
            return f"{parts.scheme or 'unix'}:{parts.path}/{db}"
        if self.sentinel is not None:
            return f"sentinel:{self.sentinel}"
        params = self.params
        return f"{params.get('host', 'localhost')}:{params.get('port', 6379)}/{params.get('db', 0)}"


def parse_host(host: Any) -> RedisHost:
    """An entry of ``CONFIG["hosts"]``: a URL, a (host, port) pair, or a dict.

    A dict's ``address`` (a URL, or a pair) wins over ``master_name``, as in
    channels_redis' own ``create_pool``; its other keys are redis-py options.
    """
    if isinstance(host, Mapping):
        params = {k: v for k, v in host.items() if k != "address"}
        if "address" in host:
            address = host["address"]
            if isinstance(address, tuple | list) and len(address) >= 2:
                return RedisHost(params={"host": address[0], "port": address[1], **params})
            return RedisHost(url=str(address), params=params)
        if "master_name" in host:
            return RedisHost(sentinel=str(host["master_name"]), params=params)
        return RedisHost(params=params)
    if isinstance(host, tuple | list) and len(host) >= 2:
        return RedisHost(params={"host": host[0], "port": host[1]})
    return RedisHost(url=str(host))
