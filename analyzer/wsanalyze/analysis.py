"""Analysis's front door: load the evidence, correlate the logs, judge, return result objects.

    report = conversation_report("abc", traces="./.wstrace", logs="compose.log")
    rows = conversation_list(traces, outcome="lost")
    lost = lost_report(traces)

Each call runs the same three steps: load spans and/or log lines
(``wsanalyze.sources``) into the one event table; turn log lines into chain rows
joined to their conversations (``verdicts.logchains``); hand the table to the
verdict engine (``wsanalyze.verdicts``). The commands, the demo and the tests call
these, never the steps, so orchestration lives here and the engine stays a pure
function of the table.

Every failure of the input raises :class:`AnalysisError` (a one-line message
saying what was looked at), never a traceback worth showing.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import polars as pl
from wstrace import conventions as c

from .report import ConnectionSummary, ConversationReport, ConversationSummary, LostReport
from .verdicts import (
    DEFAULT_IN_FLIGHT,
    aggregate_lost,
    analyze_conversation,
    known_conversations,
    list_connections,
    summarize_conversations,
)
from .verdicts.closecodes import CloseCodes
from .verdicts.logchains import SENDS_LOGGED, log_chains


class AnalysisError(Exception):
    """Unusable input: unknown id, unreadable or empty source. The message is one line."""


class UnknownConversation(AnalysisError):
    """No evidence for the conversation id; ``suggestions`` are the closest known ids."""

    def __init__(self, conversation_id: str, suggestions: Sequence[str], where: str) -> None:
        self.conversation_id = conversation_id
        self.suggestions = list(suggestions)
        hint = f"; closest known: {', '.join(self.suggestions)}" if self.suggestions else ""
        super().__init__(f"no conversation {conversation_id!r} in {where}{hint}")


def _is_worker() -> pl.Expr:
    return (
        (pl.col("event") == c.EV_WORKER_READY) | (pl.col("name") == c.SPAN_WORKER_READY)
    ).fill_null(False)


def _load(
    traces,
    logs,
    *,
    conversation_id=None,
    since=None,
    until=None,
    at=None,
    message_ids: Sequence[str] = (),
    app_message_ids: Sequence[str] = (),
):
    """(events, problems, sources, window_end) from traces and/or logs.

    ``at`` computes verdicts as of that moment: later evidence is left out and the
    data window ends there (a message still waiting then is in flight).
    ``message_ids`` / ``app_message_ids`` select spans by message (see
    ``wsanalyze.sources.Query``); logs are not searched by them.
    """
    if at is not None:
        events, problems, sources, _ = _load(
            traces,
            logs,
            conversation_id=conversation_id,
            since=since,
            until=until,
            message_ids=message_ids,
            app_message_ids=app_message_ids,
        )
        return events.filter(pl.col("ts") <= at), problems, sources, at
    from .sources import SourceError, load_events

    frames: list[pl.LazyFrame] = []
    problems: list[str] = []
    sources: list[str] = []
    ends: list[datetime] = []
    try:
        if traces is not None or logs is None:
            result = load_events(
                traces,
                conversation_id=conversation_id,
                since=since,
                until=until,
                message_ids=message_ids,
                app_message_ids=app_message_ids,
            )
            frames.append(result.events)
            problems += result.problems
            sources += [str(s) for s in result.sources]
            if result.window_end:
                ends.append(result.window_end)
        if logs is not None:
            # Read every log line: a Celery line names only its task id, which a span or
            # an app line ties to a conversation (exact) or time does; filter after the join.
            log_result = _load_logs(logs, since=since, until=until)
            frames.append(log_result.events)
            problems += log_result.problems
            sources += [str(s) for s in log_result.sources]
            if log_result.window_end:
                ends.append(log_result.window_end)
    except SourceError as exc:
        raise AnalysisError(str(exc)) from None
    except OSError as exc:
        raise AnalysisError(f"cannot read {exc.filename or 'the source'}: {exc.strerror}") from None
    events = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    if logs is not None:
        events = _log_chains(events, conversation_id)
    return events, problems, sources, (max(ends) if ends else None)


def _log_chains(events: pl.LazyFrame, conversation_id: str | None) -> pl.LazyFrame:
    """Log rows joined to their conversations and made chain rows (``verdicts.logchains``):
    the one engine then decides from spans, logs or both. With a conversation asked for,
    only its log rows are kept (worker facts too)."""
    joined = log_chains(events).collect().lazy()
    if conversation_id is None:
        return joined
    keep = (
        (pl.col("source") != "log")
        | (pl.col("conversation_id") == conversation_id)
        | (pl.col("event") == c.EV_WORKER_READY)
        | (pl.col("name") == "celery")  # whether workers logged at all (no_worker needs it)
        | (pl.col("event") == SENDS_LOGGED)  # which services log their sends (log_unsent)
    ).fill_null(False)
    return joined.filter(keep)


def _load_logs(logs, **query):
    from .sources.logs import load_log_events

    return load_log_events(logs, **query)


def _where(sources: Sequence[str], traces) -> str:
    """The place to name in an error: what the user gave, else the default store."""
    if traces is not None:
        return str(traces)
    from .sources import default_traces_dir

    if sources and len(sources) == 1:
        return sources[0]
    return str(default_traces_dir())


def conversation_report(
    conversation_id: str,
    *,
    traces: str | None = None,
    logs: str | None = None,
    close_codes: CloseCodes | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    at: datetime | None = None,
) -> ConversationReport:
    """Load one conversation's evidence and analyze it.

    Log lines are chain rows of the same table (``verdicts.logchains``): from logs
    alone, spans alone or both, the same rules decide, each verdict with its confidence.
    An id no conversation has but one conversation's message carries (the message id
    or the app's own id for it) analyzes that conversation, saying so in ``problems``.
    """
    events, problems, sources, window_end = _load(
        traces, logs, conversation_id=conversation_id, at=at
    )
    own = events.filter(pl.col("conversation_id") == conversation_id)
    if own.select(pl.len()).collect().item() == 0 and (traces is not None or logs is None):
        holder = _conversation_holding(conversation_id, traces, sources, at)
        if holder is not None:
            report = conversation_report(
                holder,
                traces=traces,
                logs=logs,
                close_codes=close_codes,
                in_flight=in_flight,
                at=at,
            )
            note = f"conversation {holder} holds message {conversation_id}"
            return replace(report, problems=(note, *report.problems))
    if own.select(pl.len()).collect().item() == 0:
        known = _known_ids(traces, logs)
        where = _where(sources, traces)
        if not known:
            raise AnalysisError(f"no conversations in {where}: is wstrace writing there?")
        raise UnknownConversation(
            conversation_id,
            difflib.get_close_matches(conversation_id, known, n=3, cutoff=0.3),
            where,
        )
    kwargs = dict(window_end=window_end, in_flight=in_flight, close_codes=close_codes,
                  problems=problems, sources=sources)  # fmt: skip
    events = events.collect().lazy()
    if traces is not None or logs is None:
        events = _with_untagged_chains(events, conversation_id, traces, at)
    report = analyze_conversation(events, conversation_id, **kwargs)
    if (traces is not None or logs is None) and _needs_worker_facts(report, events):
        workers, _, _, _ = _load(traces, None)
        extra = workers.filter(_is_worker())
        report = analyze_conversation(pl.concat([events, extra]), conversation_id, **kwargs)
    return report


def _with_untagged_chains(
    events: pl.LazyFrame, conversation_id: str, traces: str | None, at: datetime | None = None
) -> pl.LazyFrame:
    """Add the spans of the conversation's messages that carry no conversation id.

    A read by conversation keeps only spans tagged with it; an answer started over
    HTTP (a REST post, an edit endpoint re-running a message's task) names no
    conversation until a delivery does, or never when it failed before publishing.
    Its spans carry the message id (the publishes under an HTTP request in baggage),
    so a needle read of the conversation's message ids finds them: about one pass
    over the files, where reading every span took ~30x longer (benchmarks/README.md).
    """
    own = events.filter(pl.col("conversation_id") == conversation_id)
    ids = own.select(pl.col("message_id").drop_nulls().unique().sort()).collect()
    if ids.height == 0:
        return events
    extra, _, _, _ = _load(traces, None, message_ids=ids["message_id"].to_list(), at=at)
    known = events.select(pl.col("span_id").drop_nulls().unique())
    extra = extra.unique(subset=["span_id", "ts", "name"]).join(known, on="span_id", how="anti")
    return pl.concat([events, extra], how="vertical_relaxed").collect().lazy()


def _conversation_holding(
    message_id: str, traces: str | None, sources: Sequence[str], at: datetime | None
) -> str | None:
    """The one conversation with a span naming ``message_id`` as message or app message id.

    A needle read of that id (a column scan on a compacted store), so an id typed
    from the app's database or a log costs about one conversation lookup. None when
    no conversation names it; several are an error that lists them.
    """
    rows, _, _, _ = _load(traces, None, app_message_ids=[message_id], at=at)
    found = (
        rows.select(pl.col("conversation_id").drop_nulls().unique().sort())
        .collect()["conversation_id"]
        .to_list()
    )
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise AnalysisError(
            f"no conversation {message_id!r} in {_where(sources, traces)}; "
            f"{len(found)} conversations hold a message with that id: {shown}"
        )
    return found[0] if found else None


def _known_ids(traces, logs) -> list[str]:
    """Every conversation id the sources know, for "closest known" (no span decoding)."""
    from .sources import SourceError, conversation_ids

    ids: set[str] = set()
    try:
        if traces is not None or logs is None:
            ids.update(conversation_ids(traces))
    except SourceError as exc:
        raise AnalysisError(str(exc)) from None
    if logs is not None:
        ids.update(known_conversations(_load_logs(logs).events))
    return sorted(ids)


def _needs_worker_facts(report: ConversationReport, events: pl.LazyFrame) -> bool:
    """Enqueued-but-never-started messages need the workers' queues, which no conversation holds."""
    waiting = any(
        m.hop == c.HOP_TASK and m.rule in ("no_worker", "in_flight") for m in report.messages
    )
    if not waiting:
        return False
    return events.filter(_is_worker()).select(pl.len()).collect().item() == 0


def conversation_list(
    *,
    traces: str | None = None,
    logs: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    cause: str | None = None,
    close_codes: CloseCodes | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    at: datetime | None = None,
) -> tuple[list[ConversationSummary], list[str]]:
    """Every conversation with its verdict (newest first), filtered; and the input problems.

    ``since``/``until`` pick the conversations active in that window; each is still
    judged on all of its evidence (a window cutting a conversation in two must not
    invent a verdict).
    """
    events, problems, _, window_end = _load(traces, logs, at=at)
    rows = summarize_conversations(
        events, window_end=window_end, in_flight=in_flight, close_codes=close_codes
    )
    if since is not None:
        rows = [r for r in rows if r.last_ts is not None and r.last_ts >= since]
    if until is not None:
        rows = [r for r in rows if r.first_ts is not None and r.first_ts <= until]
    if outcome:
        rows = [r for r in rows if r.verdict.outcome == outcome]
    if cause:
        rows = [r for r in rows if r.verdict.cause == cause]
    return rows, problems


def connection_list(
    *,
    traces: str | None = None,
    logs: str | None = None,
    close_codes: CloseCodes | None = None,
    without_conversation: bool = False,
) -> tuple[list[ConnectionSummary], list[str]]:
    """Every connection with how it ended (newest first); and the input problems.

    ``without_conversation`` keeps only the connections of routes that name no
    conversation (a ``/ws/user/<id>/`` notification socket, an unresolved path).
    """
    events, problems, _, _ = _load(traces, logs)
    rows = list_connections(events, close_codes)
    if without_conversation:
        rows = [r for r in rows if r.conversation_id is None]
    return rows, problems


def lost_report(
    *,
    traces: str | None = None,
    logs: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    close_codes: CloseCodes | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
) -> LostReport:
    """Lost messages aggregated by hop and cause (messages that started within the window)."""
    events, problems, _, window_end = _load(traces, logs)
    report = aggregate_lost(
        events,
        window_end=window_end,
        in_flight=in_flight,
        close_codes=close_codes,
        since=since,
        until=until,
    )
    return LostReport(report.total_messages, report.lost, report.groups, tuple(problems))
