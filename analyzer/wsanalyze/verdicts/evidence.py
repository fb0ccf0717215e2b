"""Readable evidence lines about a message's chain: which hops exist, which are missing."""

from __future__ import annotations

from wstrace import conventions as c

from .rules._base import Facts, at


def _describe(hop: str, f: Facts) -> str:
    n = f.get(f"n_{hop}") or 0
    bad = " — ERROR" if f.get(f"err_{hop}") else ""
    if hop == c.HOP_RECEIVE:
        return f"receive: ws.receive at {at(f.get('ts_receive'))}{bad}"
    if hop == c.HOP_ENQUEUE:
        return f"enqueue: {f.get('task_name') or 'task'} → queue {f.get('queue')!r}{bad}"
    if hop == c.HOP_TASK:
        ended = "no end" if f.get("task_unended") else "ended"
        where = f" on {f['task_service']}" if f.get("task_service") else ""
        runs = f.get("task_runs", n)  # ws.task_revoked is evidence about a run, not one
        revoked = ", revoked" if f.get("revoked") else ""
        return f"task: {runs} run(s){where}, {ended}{revoked}{bad}"
    if hop == c.HOP_PUBLISH:
        target = f.get("publish_group") or "channel"
        members = f.get("min_members")
        receivers = f.get("min_receivers")
        extra = ""
        if members is not None:
            extra = f", min members {members}"
        elif receivers is not None:
            extra = f", min receivers {receivers}"
        return f"publish: {f.get('published', 0)} chunk(s) to {target}{extra}{bad}"
    if hop == c.HOP_DELIVER:
        return f"deliver: {f.get('delivered', 0)} chunk(s) handled by the consumer{bad}"
    other = n - (f.get("sent") or 0)
    extra = f" (+{other} other frame(s), e.g. an ack)" if other > 0 and f.get("published") else ""
    return f"send: {f.get('sent', 0)} chunk frame(s) written to the client{extra}{bad}"


def chain_lines(f: Facts) -> list[str]:
    """One line per hop present, then the missing hops from where the chain stopped."""
    lines = [_describe(hop, f) for hop in c.MESSAGE_HOPS if f.get(f"n_{hop}")]
    if f.get("outcome") != "delivered":
        start = c.MESSAGE_HOPS.index(f["first_missing"]) if f.get("first_missing") else 0
        missing = [hop for hop in c.MESSAGE_HOPS[start:] if not f.get(f"n_{hop}")]
        if missing:
            lines.append("missing: " + ", ".join(f"ws.{hop}" for hop in missing))
    return lines
