"""The text of a failed ``wstrace.assert_delivered``: the verdict, hop, cause, evidence and fix.

One block per message (or connection) that did not get through, in the order
they failed, with what ``wsanalyze conversation`` prints for it::

    wstrace: 1 of 1 conversation(s) not delivered

    conversation c1 was not delivered: LOST at deliver, cause consumer_gone
      message m1 lost at deliver: consumer_gone (6 published, 0 delivered, 0 sent)

      message m1: LOST  hop=deliver  cause=consumer_gone
        reached: receive → enqueue → task → publish
        chunks: published 6, delivered 0, sent 0
        evidence:
          - ...
        fix: ...
        (wsanalyze explain consumer_gone)
"""

from __future__ import annotations

from collections.abc import Sequence

from wsanalyze.report import ConnectionVerdict, ConversationReport, MessageVerdict, Verdict

__all__ = ["delivered", "describe_failures", "not_seen", "nothing_seen"]

_FAILED_CONNECTION = ("lost", "rejected")


def delivered(report: ConversationReport) -> bool:
    """Whether everything of the conversation got through (its verdict, every message and socket)."""
    return (
        report.verdict.outcome == "delivered"
        and all(m.outcome == "delivered" for m in report.messages)
        and not any(k.outcome in _FAILED_CONNECTION for k in report.connections)
    )


def _verdict(v: Verdict) -> str:
    return f"{v.outcome.upper()}  hop={v.hop or '-'}  cause={v.cause}"


def _message_block(m: MessageVerdict, said: str) -> list[str]:
    lines = [f"message {m.message_id}: {_verdict(Verdict(m.outcome, m.hop, m.cause))}"]
    if m.app_ids and list(m.app_ids) != [m.message_id]:
        lines.append(f"  app ids: {', '.join(m.app_ids)}")
    if m.summary and m.summary != said:  # the conversation's summary is often this one
        lines.append(f"  {m.summary}")
    lines.append(f"  reached: {' → '.join(m.hops_seen) or 'nothing'}")
    chunks = m.chunks
    lines.append(
        f"  chunks: published {chunks.published}, delivered {chunks.delivered}, sent {chunks.sent}"
    )
    if m.evidence:
        lines.append("  evidence:")
        lines += [f"    - {line}" for line in m.evidence]
    if m.hint:
        lines.append(f"  fix: {m.hint}")
    lines.append(f"  (wsanalyze explain {m.cause})")
    return lines


def _connection_block(k: ConnectionVerdict) -> list[str]:
    closed = ""
    if k.close_code is not None:
        closed = f"  (closed {k.close_code}{f' by {k.closed_by}' if k.closed_by else ''})"
    lines = [
        f"connection {k.connection_id}: {_verdict(Verdict(k.outcome, k.hop, k.cause))}{closed}"
    ]
    if k.summary:
        lines.append(f"  {k.summary}")
    lines += [f"  - {line}" for line in k.evidence]
    lines.append(f"  (wsanalyze explain {k.cause})")
    return lines


def _conversation_text(report: ConversationReport, waited: float | None) -> list[str]:
    v = report.verdict
    head = f"conversation {report.conversation_id} was not delivered: {v.outcome.upper()}"
    if v.hop:
        head += f" at {v.hop}"
    head += f", cause {v.cause}"
    if v.outcome == "in_flight" and waited is not None:
        head += f" (still waiting after {waited:.1f} s)"
    lines = [head]
    if v.summary:
        lines.append(f"  {v.summary}")
    blocks: list[tuple[object, list[str]]] = []
    for k in report.connections:
        if k.outcome in _FAILED_CONNECTION:
            blocks.append((k.failed_ts or k.closed or k.opened, _connection_block(k)))
    for m in report.messages:
        if m.outcome != "delivered":
            blocks.append((m.failed_ts or m.first_ts, _message_block(m, v.summary)))
    blocks.sort(key=lambda block: (block[0] is None, block[0] or 0))
    for _, block in blocks:
        lines.append("")
        lines += [f"  {line}" for line in block]
    return lines


def describe_failures(
    failed: Sequence[ConversationReport], checked: int, waited: float | None = None
) -> str:
    """The assertion message for the conversations (of ``checked``) that were not delivered."""
    lines = [f"wstrace: {len(failed)} of {checked} conversation(s) not delivered"]
    for report in failed:
        lines.append("")
        lines += _conversation_text(report, waited)
    return "\n".join(lines)


def nothing_seen(problems: Sequence[str]) -> str:
    """The assertion message when the test left no conversation at all."""
    lines = [
        "wstrace: no conversation was seen in this test. A WebSocket connection belongs to "
        "a conversation when its route names one (the URL kwarg WSTRACE['CONVERSATION_KWARG'], "
        "'conversation_id' by default), CONVERSATION_PATTERN matches its path, or "
        "CONVERSATION_RESOLVER returns an id; and only connections made while the fixture "
        "is active, through an application wstrace instruments (Channels' routers and "
        "consumers), leave spans."
    ]
    lines += [f"  problem: {p}" for p in problems]
    return "\n".join(lines)


def not_seen(conversation_id: str, seen: Sequence[str]) -> str:
    """The assertion message when the conversation asked for left no span in this test."""
    others = f"; it saw {', '.join(seen)}" if seen else "; it saw none"
    return f"wstrace: conversation {conversation_id!r} was not seen in this test{others}"
