"""Rich views for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..causes import CauseInfo
from ..report import (
    ConnectionSummary,
    ConversationReport,
    ConversationSummary,
    LostReport,
    TimelineEntry,
    Verdict,
)
from .safe_text import ident, plain, shown

OUTCOME_STYLE = {
    "delivered": "green",
    "rejected": "red",
    "lost": "bold red",
    "in_flight": "yellow",
}


def _t(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ts else "-"


def outcome_text(outcome: str) -> Text:
    return plain(outcome, OUTCOME_STYLE.get(outcome, ""))


def verdict_line(v: Verdict) -> Text:
    """outcome · hop · cause in colour."""
    text = Text()
    text.append(shown(v.outcome.upper()), style=OUTCOME_STYLE.get(v.outcome, "bold"))
    text.append(f"  hop={shown(v.hop or '-')}  cause=", style="dim")
    text.append(shown(v.cause), style="bold")
    if v.confidence and v.confidence != "exact":  # from log lines: how sure
        text.append(f"  confidence={shown(v.confidence)}", style="dim")
    return text


def conversation_view(report: ConversationReport, *, timeline_limit: int | None = None) -> Group:
    """Header with the verdict, connections, per-message table, evidence and hints, timeline."""
    parts: list = []
    header = Text.assemble(("conversation ", "dim"), (ident(report.conversation_id), "bold"), "\n")
    header.append_text(verdict_line(report.verdict))
    header.append("\n" + shown(report.verdict.summary))
    parts.append(
        Panel(header, title="wsanalyze", border_style=OUTCOME_STYLE.get(report.verdict.outcome, ""))
    )

    if report.connections:
        conns = Table(title="Connections", title_justify="left", expand=False)
        for col in ("connection", "opened", "closed", "code", "by", "outcome", "cause"):
            conns.add_column(col)
        for k in report.connections:
            conns.add_row(
                Text(ident(k.connection_id)),
                _t(k.opened),
                _t(k.closed),
                "-" if k.close_code is None else str(k.close_code),
                plain(k.closed_by or "-"),
                outcome_text(k.outcome),
                plain(k.cause),
            )
        parts.append(conns)

    if report.messages:
        msgs = Table(title="Messages", title_justify="left")
        for col in (
            "message",
            "outcome",
            "hop",
            "cause",
            "published",
            "delivered",
            "sent",
            "reached",
        ):
            msgs.add_column(
                col, justify="right" if col in ("published", "delivered", "sent") else "left"
            )
        for m in report.messages:
            msgs.add_row(
                Text(ident(m.message_id)),
                outcome_text(m.outcome),
                plain(m.hop or "-"),
                plain(m.cause),
                str(m.chunks.published),
                str(m.chunks.delivered),
                str(m.chunks.sent),
                plain(" → ".join(m.hops_seen) or "-"),
            )
        parts.append(msgs)
        for m in report.messages:
            if m.outcome == "delivered" and m.cause == "ok":
                continue
            body = Text()
            for line in m.evidence:
                body.append(f"  • {shown(line)}\n")
            body.append("  fix: ", style="bold cyan")
            body.append(shown(m.hint))
            title = Text.assemble(
                f"{ident(m.message_id)}: ", verdict_line(Verdict(m.outcome, m.hop, m.cause))
            )
            parts.append(Panel(body, title=title, title_align="left", border_style="red"))

    if report.timeline:
        parts.extend(timeline_view(report.timeline, timeline_limit))
    if report.problems:
        parts.append(problems_view(report.problems))
    return Group(*parts)


def timeline_view(
    timeline: Sequence[TimelineEntry], limit: int | None = None
) -> list[Table | Text]:
    """The timeline table, cut after ``limit`` rows (None: every row) with a line saying so.

    A row costs about half a millisecond to lay out, so a conversation of thousands of
    spans would take seconds to print in full; --json has every row at once.
    """
    entries = timeline if limit is None else timeline[:limit]
    tl = Table(title="Timeline", title_justify="left")
    for col in ("+ms", "service", "hop", "event", "message", "seq", "detail"):
        tl.add_column(col, justify="right" if col in ("+ms", "seq") else "left", overflow="fold")
    for e in entries:
        tl.add_row(
            f"{e.offset_ms:,.1f}",
            plain(e.service or "-"),
            plain(e.hop or "-"),
            plain(e.event or "-"),
            Text(ident(e.message_id, placeholder="")),
            "" if e.seq is None else str(e.seq),
            plain(e.detail),
            style="red" if e.failed else "",
        )
    more = len(timeline) - len(entries)
    if not more:
        return [tl]
    rest = Text(f"{more:,} more rows: --limit {len(timeline)} / --json", style="dim")
    return [tl, rest]


def problems_view(problems: list[str] | tuple[str, ...]) -> Text:
    text = Text(f"{len(problems)} input problem(s):\n", style="yellow")
    for line in problems[:20]:
        text.append(f"  {shown(line)}\n", style="yellow")
    if len(problems) > 20:
        text.append(f"  … and {len(problems) - 20} more\n", style="yellow")
    return text


def conversations_view(rows: list[ConversationSummary], total: int | None = None) -> Table:
    """One line per conversation: when, how many messages, the verdict."""
    total = len(rows) if total is None else total
    shown = f", newest {len(rows)} shown (--limit)" if total > len(rows) else ""
    table = Table(
        title=f"{total} conversation(s){shown}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("conversation", overflow="fold", min_width=10, ratio=1)
    table.add_column("started", no_wrap=True, min_width=8)
    for col in ("msgs", "lost"):
        table.add_column(col, justify="right", no_wrap=True)
    widths = {
        "outcome": max([7, *(len(r.verdict.outcome) for r in rows)]),
        "hop": max([3, *(len(r.verdict.hop or "-") for r in rows)]),
        "cause": max([5, *(len(r.verdict.cause) for r in rows)]),
    }
    for col, width in widths.items():
        table.add_column(col, no_wrap=True, min_width=width)
    for r in rows:
        table.add_row(
            Text(ident(r.conversation_id)),
            r.first_ts.strftime("%H:%M:%S") if r.first_ts else "-",
            str(r.messages),
            str(r.lost),
            outcome_text(r.verdict.outcome),
            plain(r.verdict.hop or "-"),
            plain(r.verdict.cause),
        )
    return table


def connections_view(rows: list[ConnectionSummary], total: int | None = None) -> Table:
    """One line per connection: its route, its conversation (if any) and how it ended."""
    total = len(rows) if total is None else total
    shown = f", newest {len(rows)} shown (--limit)" if total > len(rows) else ""
    table = Table(
        title=f"{total} connection(s){shown}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("connection", "route", "conversation", "opened", "close", "outcome", "cause"):
        table.add_column(col, overflow="fold")
    for r in rows:
        close = f"{r.close_code if r.close_code is not None else '-'} {r.closed_by or ''}".strip()
        table.add_row(
            Text(ident(r.connection_id)),
            plain(r.route or "-"),
            Text(ident(r.conversation_id, placeholder="(none)")),
            r.opened.strftime("%H:%M:%S") if r.opened else "-",
            plain(close),
            outcome_text(r.outcome),
            plain(r.cause),
        )
    return table


def lost_view(report: LostReport) -> Group:
    head = Text(f"{report.lost} of {report.total_messages} message(s) lost", style="bold")
    table = Table(title_justify="left")
    for col in ("hop", "cause", "lost", "conversations", "examples"):
        table.add_column(col, justify="right" if col in ("lost", "conversations") else "left")
    for g in report.groups:
        table.add_row(
            plain(g.hop or "-"),
            plain(g.cause),
            str(g.count),
            str(g.conversations),
            Text(", ".join(_example(e) for e in g.examples)),
        )
    parts: list = [head, table] if report.groups else [head]
    if report.problems:
        parts.append(problems_view(report.problems))
    return Group(*parts)


def _example(example: str) -> str:
    """A "conversation/message" example with each id shortened on its own."""
    conversation, sep, message = example.partition("/")
    return ident(conversation) + (sep + ident(message, placeholder="") if sep else "")


def explain_view(info: CauseInfo) -> Panel:
    body = Text()
    body.append("What it means\n", style="bold")
    body.append(info.meaning + "\n\n")
    body.append("How it shows\n", style="bold")
    body.append(info.signals + "\n\n")
    body.append("How to fix\n", style="bold")
    body.append(info.fix)
    return Panel(body, title=plain(info.cause), title_align="left")
