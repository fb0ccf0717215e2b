"""The task raised (or the layer call it made raised something other than a connection error)."""

from __future__ import annotations

from ._base import Rule, col, exc, span_source


def _evidence(f):
    where = span_source(f, "task") if f["err_hop"] == "task" else "ws.publish (inside the task)"
    lines = [f"{where} errored: {exc(f)}"]
    if f["err_hop"] == "publish" and f.get("err_task"):
        lines.append("ws.task errored too, because its publish raised")
    return lines


def _hint(f):
    text = exc(f)
    if "serializ" in text.lower():
        return (
            "The channel layer could not serialize the message: send plain JSON-able dicts "
            "(str ids, ISO datetimes), not UUID/datetime/model objects."
        )
    if "AsyncToSync" in text or "event loop" in text.lower():
        return "async_to_sync was used inside a running event loop: await the layer call instead."
    return (
        f"Fix the exception in {f.get('task_name') or 'the task'}; send a terminal error chunk "
        "in a finally block so the client hears about failures."
    )


RULES = (
    Rule(
        name="task_failed",
        priority=60,
        when=col("err_hop").is_in(["task", "publish"]),
        cause="task_failed",
        hop=col("err_hop"),
        evidence=_evidence,
        hint=_hint,
    ),
)
