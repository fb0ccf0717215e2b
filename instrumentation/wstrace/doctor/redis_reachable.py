"""``redis_reachable``: every Redis host of CHANNEL_LAYERS answers PING."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from wstrace.redact import redact_url

from ._settings import backend_name, layer_settings
from .registry import Check, Item, Options, register
from .status import FAIL, PASS, SKIP

REDIS_REACHABLE = Item("redis_reachable")
_DEFAULT_HOSTS = [("localhost", 6379)]  # what channels_redis connects to without `hosts`


def _redis_clients(config: dict[str, Any]) -> list[tuple[str, Callable[[float], Any] | None]]:
    """(label, factory(timeout) → redis.Redis) for every host of a channels_redis layer.

    Hosts are read by the parser wstrace's layer identity uses (URL strings, (host, port)
    pairs, dicts with an ``address`` or ``host``/``port``/``db``/``password`` and redis-py
    options such as ``socket_timeout``); a Sentinel host has no factory. Options a host
    sets win over the doctor's timeout.
    """
    import redis

    # Imported here: it loads the OpenTelemetry SDK, which importing wstrace.doctor must not.
    from wstrace.channels.layer_identity import parse_host

    def options(t: float, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"socket_timeout": t, "socket_connect_timeout": t, **given}

    out: list[tuple[str, Callable[[float], Any] | None]] = []
    for entry in (config.get("CONFIG") or {}).get("hosts") or _DEFAULT_HOSTS:
        host = parse_host(entry)
        if host.sentinel is not None:
            out.append((host.location(), None))
        elif host.url is not None:
            out.append(
                (
                    redact_url(host.url),
                    lambda t, u=host.url, k=host.params: redis.Redis.from_url(u, **options(t, k)),
                )
            )
        else:
            out.append((host.location(), lambda t, k=host.params: redis.Redis(**options(t, k))))
    return out


@register(REDIS_REACHABLE)
def check_redis_reachable(opts: Options) -> Check:
    config = layer_settings()
    if not config:
        return REDIS_REACHABLE(
            FAIL,
            "CHANNEL_LAYERS has no 'default' layer",
            ["settings.CHANNEL_LAYERS is empty or missing"],
            "Configure CHANNEL_LAYERS['default'] with channels_redis.core.RedisChannelLayer.",
        )
    if "redis" not in backend_name(config).lower():
        return REDIS_REACHABLE(
            SKIP,
            f"the layer is {backend_name(config)}, not a Redis layer",
            [f"BACKEND = {backend_name(config)}"],
        )
    evidence, failed = [], []
    for label, factory in _redis_clients(config):
        if factory is None:
            evidence.append(f"{label}: not checked (sentinel)")
            continue
        started = time.perf_counter()
        try:
            client = factory(opts.timeout)
            client.ping()
            evidence.append(
                f"PING {label} → PONG in {(time.perf_counter() - started) * 1e3:.1f} ms"
            )
            client.close()
        except Exception as exc:
            failed.append(label)
            evidence.append(f"PING {label} → {type(exc).__name__}: {exc}")
    if failed:
        return REDIS_REACHABLE(
            FAIL,
            f"Redis of the channel layer unreachable: {', '.join(failed)}",
            evidence,
            "Start Redis or fix CHANNEL_LAYERS hosts. In Docker use the service name "
            "(redis://redis:6379), not localhost; check the port and password.",
        )
    return REDIS_REACHABLE(PASS, "every layer host answers PING", evidence)
