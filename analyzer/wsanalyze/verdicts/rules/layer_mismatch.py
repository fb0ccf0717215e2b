"""The publisher used a different channel layer than the consumer joined the group on."""

from __future__ import annotations

from ._base import Rule, col, incomplete


def _evidence(f):
    if f.get("src_publish") == "log":
        return [
            f"the worker that ran the task said it loaded the channel layer "
            f"{f.get('publish_layer')}",
            f"the socket's process said it loaded {', '.join(f.get('consumer_layers') or [])}: "
            "the answer was published where no consumer listens",
        ]
    return [
        f"ws.publish to {f.get('publish_group') or 'the group'} found "
        f"{_zero(f)} on layer {f.get('publish_layer')}",
        f"the consumer joined on layer(s) {', '.join(f.get('consumer_layers') or [])}",
    ]


def _zero(f):
    return "0 members" if f.get("min_members") == 0 else "0 receivers"


RULES = (
    Rule(
        name="layer_mismatch",
        priority=110,
        when=incomplete()
        & col("empty_publish")
        & col("publish_layer").is_not_null()
        & (col("consumer_layers").list.len() > 0)
        & ~col("consumer_layers").list.contains(col("publish_layer")),
        cause="layer_mismatch",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=lambda f: (
            "Web and worker use different channel layers "
            f"({f.get('publish_layer')} vs {', '.join(f.get('consumer_layers') or [])}): load one "
            "CHANNEL_LAYERS setting (same hosts, db and prefix) in both processes."
        ),
    ),
)
