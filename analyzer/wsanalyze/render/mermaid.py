"""A Mermaid sequence diagram of one conversation: participants are services."""

from __future__ import annotations

from wstrace import conventions as c

from ..report import ConversationReport, TimelineEntry

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


def _safe(text: str) -> str:
    return text.replace(";", ",").replace("#", "").replace("\n", " ")[:80]


def _svc(service: str | None, default: str) -> str:
    return (service or default).replace("-", "_").replace(".", "_") or default


def _label(e: TimelineEntry) -> str:
    parts = [e.event or e.hop or "?"]
    if e.seq is not None:
        parts.append(f"#{e.seq}")
    if e.message_id:
        parts.append(f"({e.message_id[:12]})")
    if e.failed:
        parts.append("✗ " + _safe(e.detail))
    return _safe(" ".join(parts))


def to_mermaid(report: ConversationReport) -> str:
    """The diagram text (```mermaid fences not included)."""
    lines = ["sequenceDiagram", "    autonumber"]
    web = _svc(next((e.service for e in report.timeline if e.hop == c.HOP_RECEIVE), None), "web")
    worker = _svc(next((e.service for e in report.timeline if e.hop == c.HOP_TASK), None), "worker")
    for name in ("client", web, "broker", worker, "layer"):
        lines.append(f"    participant {name}")
    for e in report.timeline:
        if e.hop not in _ARROWS and e.event not in (c.EV_GROUP_ADD, c.EV_GROUP_DISCARD):
            continue
        src, dst = _ARROWS.get(e.hop or "", ("web", "layer"))
        if e.event in (c.EV_GROUP_ADD, c.EV_GROUP_DISCARD):
            src, dst = "web", "layer"
        src = {"web": web, "worker": worker}.get(src, src)
        dst = {"web": web, "worker": worker}.get(dst, dst)
        if e.hop == c.HOP_DISCONNECT and e.detail and "closed_by=server" in e.detail:
            src, dst = web, "client"
        arrow = "-x" if e.failed else "->>"
        lines.append(f"    {src}{arrow}{dst}: {_label(e)}")
    for m in report.messages:
        if m.outcome != "delivered":
            lines.append(
                f"    Note over client,layer: {m.message_id}: {m.outcome} at {m.hop} ({m.cause})"
            )
    v = report.verdict
    lines.append(f"    Note over client,layer: verdict {v.outcome} / {v.hop} / {v.cause}")
    return "\n".join(lines) + "\n"
