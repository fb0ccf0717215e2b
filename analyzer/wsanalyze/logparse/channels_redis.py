"""channels_redis: the only line its core layer writes about dropped messages.

    1 of 1 channels over capacity in group chat_c-overcap    (INFO, channels_redis.core)

The group_send found channels at capacity and skipped them: those members lost
this message (cause channel_full, hop publish). The conversation id is read from
the group name's part after its first `_`/`.`/`-` (confidence "path").
"""

from __future__ import annotations

from wsanalyze.logparse.rules import Rule

RULES: tuple[Rule, ...] = (
    Rule(
        "over_capacity",
        "channels_redis",
        "over capacity in group",
        r"(?P<over_capacity>\d+) of (?P<members>\d+) channels over capacity"
        r" in group (?P<group>\S+)",
        hop="publish",
        status="error",
        cause="channel_full",
        priority=10,
    ),
    Rule(
        "channel_full",
        "channels_redis",
        "ChannelFull",
        r"(?P<exc>ChannelFull\b.*)$",
        hop="publish",
        status="error",
        cause="channel_full",
        priority=30,
    ),
)

GROUP_CONVERSATION = r"^[A-Za-z0-9]+[_.\-](?P<id>.+)$"
