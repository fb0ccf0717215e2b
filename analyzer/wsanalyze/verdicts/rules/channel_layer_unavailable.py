"""publish raised a connection error: the channel layer's Redis is unreachable."""

from __future__ import annotations

from ._base import Rule, col, exc

RULES = (
    Rule(
        name="channel_layer_unavailable",
        priority=30,
        when=(col("err_hop") == "publish") & col("exc_unavailable"),
        cause="channel_layer_unavailable",
        hop="publish",
        evidence=lambda f: [
            f"ws.publish ({f.get('publish_event') or 'group_send'}) raised: {exc(f)}",
            f"layer: {f.get('publish_layer') or 'unknown'}",
        ],
        hint=lambda f: (
            "The channel layer's Redis refused the connection: point CHANNEL_LAYERS "
            "hosts at the Redis service the web process uses (a service name, not localhost inside "
            "Docker) and check that it is up."
        ),
    ),
)
