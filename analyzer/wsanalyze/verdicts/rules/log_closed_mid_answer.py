"""From logs: the connection closed while the message's task still ran, and no line says who closed.

Daphne's access log has no close code: a client that left and a server close
(4004, 4005 …) look the same. When the app logged neither a close code nor a
disconnect code, the message is lost at ``send`` with cause ``unknown``, naming both
candidates, rather than a guess.
"""

from __future__ import annotations

from ._base import Rule, at, col


def _evidence(f):
    return [
        f"connection {f.get('connection_id')} closed at {at(f.get('conn_closed'))} (Daphne's "
        f"stamp) while its task still ran: it finished at {at(f.get('task_end_ts'))}",
        "who closed is not in the logs: the client left (client_disconnected) or the server "
        "closed it (a policy close such as 4004 / 4005); an app log line with the close code, "
        "or wstrace's ws.close / ws.disconnect spans, would tell",
    ]


RULES = (
    Rule(
        name="log_closed_mid_answer",
        priority=125,
        when=col("log_only") & col("log_cut") & col("conn_closed_by").is_null() & ~col("any_error"),
        cause="unknown",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=lambda f: (
            "Log the close code where the consumer closes and disconnects (e.g. "
            "`ws disconnected conv=<id> code=<code>`), or enable wstrace."
        ),
    ),
)
