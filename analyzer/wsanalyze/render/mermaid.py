"""A Mermaid sequence diagram of one conversation: participants are services."""

from __future__ import annotations

from wstrace import conventions as c

from ..report import ConversationReport, TimelineEntry
from .safe_text import ident, shown

# which participant a hop's arrow goes from → to
_ARROWS: dict[str, tuple[str, str]] = {
    c.HOP_CONNECT: ("client", "web"),
    c.HOP_AUTH: ("web", "web"),
    c.HOP_ACCEPT: ("web", "client"),
    c.HOP_RECEIVE: ("client", "web"),
    c.HOP_ENQUEUE: ("web", "broker"),
    c.HOP_TASK: ("broker", "worker"),
    c.HOP_PUBLISH: ("worker", "layer"),
    c.HOP_DELIVER: ("layer", "web"),
    c.HOP_SEND: ("web", "client"),
    c.HOP_DISCONNECT: ("client", "web"),
}


# Data keeps only these characters; every other one becomes a Mermaid entity code (#59;),
# so no value can end the statement (newline, ;), open a comment (%%), start an entity
# (#) or an arrow (>), or give Mermaid's "style...:#...;" pre-pass a colon to match.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.,/@=+()-")
_DETAIL = 60  # characters of a failure's detail kept in its arrow's label


def _text(value: object) -> str:
    """Text from traces as Mermaid label text: whitelisted characters, the rest entity codes."""
    return "".join(ch if ch in _PLAIN else f"#{ord(ch)};" for ch in shown(value))


def _label(e: TimelineEntry) -> str:
    parts = [_text(e.event or e.hop or "?")]
    if e.seq is not None:
        parts.append(str(e.seq))
    if e.message_id:
        parts.append(f"({_text(ident(e.message_id))})")
    if e.failed:
        detail = e.detail if len(e.detail) <= _DETAIL else e.detail[:_DETAIL] + "…"
        parts.append("✗ " + _text(detail))
    return " ".join(parts)


def to_mermaid(report: ConversationReport) -> str:
    """The diagram text (```mermaid fences not included).

    Participants have fixed ids (client, web, broker, worker, layer); the services found
    in the data are only ever their labels (``participant web as chat-web``).
    """
    lines = ["sequenceDiagram", "    autonumber"]
    labels = {
        "web": next((e.service for e in report.timeline if e.hop == c.HOP_RECEIVE), None),
        "worker": next((e.service for e in report.timeline if e.hop == c.HOP_TASK), None),
    }
    for name in ("client", "web", "broker", "worker", "layer"):
        label = labels.get(name)
        alias = f" as {_text(label)}" if label and label != name else ""
        lines.append(f"    participant {name}{alias}")
    for e in report.timeline:
        if e.hop not in _ARROWS and e.event not in (c.EV_GROUP_ADD, c.EV_GROUP_DISCARD):
            continue
        src, dst = _ARROWS.get(e.hop or "", ("web", "layer"))
        if e.event in (c.EV_GROUP_ADD, c.EV_GROUP_DISCARD):
            src, dst = "web", "layer"
        if e.hop == c.HOP_DISCONNECT and e.detail and "closed_by=server" in e.detail:
            src, dst = "web", "client"
        arrow = "-x" if e.failed else "->>"
        lines.append(f"    {src}{arrow}{dst}: {_label(e)}")
    for m in report.messages:
        if m.outcome != "delivered":
            what = f"{ident(m.message_id)}: {m.outcome} at {m.hop or '-'} ({m.cause})"
            lines.append(f"    Note over client,layer: {_text(what)}")
    v = report.verdict
    verdict = f"verdict {v.outcome} / {v.hop or '-'} / {v.cause}"
    lines.append(f"    Note over client,layer: {_text(verdict)}")
    return "\n".join(lines) + "\n"
