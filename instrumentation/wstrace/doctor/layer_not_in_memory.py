"""``layer_not_in_memory``: no InMemoryChannelLayer when another process publishes to it.

An in-memory layer lives in one process: what a Celery worker publishes never reaches
the web process. With no broker configured (and no ``--processes``) it is a warning.
"""

from __future__ import annotations

from ._settings import backend_name, celery_configured, layer_settings
from .registry import Check, Item, Options, register
from .status import FAIL, PASS, WARN

LAYER_NOT_IN_MEMORY = Item("layer_not_in_memory")


@register(LAYER_NOT_IN_MEMORY)
def check_layer_not_in_memory(opts: Options) -> Check:
    backend = backend_name(layer_settings())
    evidence = [f"CHANNEL_LAYERS['default']['BACKEND'] = {backend or '(none)'}"]
    if "InMemory" not in backend:
        return LAYER_NOT_IN_MEMORY(PASS, f"the layer is {backend.rsplit('.', 1)[-1]}", evidence)
    others = celery_configured()
    if opts.processes and opts.processes > 1:
        others = f"{opts.processes} processes share the layer (--processes)"
    if others:
        evidence.append(others)
        return LAYER_NOT_IN_MEMORY(
            FAIL,
            "InMemoryChannelLayer with more than one process: messages published by the "
            "worker never reach the web process",
            evidence,
            "Use channels_redis.core.RedisChannelLayer in every process (same settings module).",
        )
    return LAYER_NOT_IN_MEMORY(
        WARN,
        "InMemoryChannelLayer: fine for one process and tests only",
        evidence,
        "Use channels_redis.core.RedisChannelLayer before running a second process.",
    )
