"""Published to a group with no live member on the consumer's layer, and no close explains it."""

from __future__ import annotations

from ._base import Rule, at, col, incomplete


def _evidence(f):
    if f.get("src_publish") == "log":
        return [
            f"the app's group lines show no socket of the conversation in "
            f"{f.get('publish_group') or 'its group'} while its task ran (it ended at "
            f"{at(f.get('empty_publish_ts'))}): the answer went to an empty group",
            "a socket of the conversation stayed open meanwhile (not a client that left)",
        ]
    what = "0 members" if f.get("min_members") == 0 else "0 receivers (PUBLISH returned 0)"
    lines = [
        f"ws.publish to {f.get('publish_group') or 'the group'} found {what} at "
        f"{at(f.get('empty_publish_ts'))}"
    ]
    if f.get("consumer_layers"):
        lines.append(f"same layer as the consumer's group_add ({f.get('publish_layer')})")
    if f.get("conn_closed") is None:
        lines.append(f"connection {f.get('connection_id')} shows no close")
    return lines


RULES = (
    Rule(
        name="consumer_gone",
        priority=130,
        when=incomplete() & col("empty_publish") & ~col("any_error"),
        cause="consumer_gone",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=lambda f: (
            "Nobody was in the group when the answer was published: join the group "
            "before enqueueing work (await group_add in connect), key groups by conversation, and "
            "replay missed chunks on reconnect."
        ),
    ),
)
