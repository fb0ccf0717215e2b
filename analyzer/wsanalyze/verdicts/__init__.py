"""Verdicts: how far each message got, why it stopped, and what that means for the conversation.

Data flows one way: the event table → facts per message and connection (lazy
aggregations, ``facts``) → the first matching rule of ``rules`` (one module per
cause, evaluated as polars expressions) → verdict frames (``engine``) → result
objects (``wsanalyze.report``): one conversation (``conversation``), every
conversation, the lost messages, the connections (``summaries``). A conversation's
verdict is its first failure (``first_failure``), one computation for all of them.

    report = analyze_conversation(events, "abc", window_end=result.window_end)
    rows = summarize_conversations(events, window_end=result.window_end)
    lost = aggregate_lost(events, window_end=result.window_end)

Loading the evidence and correlating logs is ``wsanalyze.analysis``'s job; this
package judges a table it is given.
"""

from __future__ import annotations

from .conversation import analyze_conversation
from .engine import DEFAULT_IN_FLIGHT, connection_verdicts, message_verdicts
from .first_failure import conversation_verdict, verdict_items
from .summaries import (
    aggregate_lost,
    known_conversations,
    list_connections,
    summarize_conversations,
)

__all__ = [
    "DEFAULT_IN_FLIGHT",
    "aggregate_lost",
    "analyze_conversation",
    "connection_verdicts",
    "conversation_verdict",
    "known_conversations",
    "list_connections",
    "message_verdicts",
    "summarize_conversations",
    "verdict_items",
]
