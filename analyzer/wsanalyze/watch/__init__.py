"""Follow a trace store (and logs) and report each message's verdict once it settles.

    watcher = Watcher(traces="./.wstrace", in_flight=timedelta(seconds=5))
    while True:
        tick = watcher.tick()
        for settled in tick.settled:      # conversation id, MessageVerdict, at, previous
            print(settled.conversation_id, settled.message.message_id, settled.message.outcome)
        time.sleep(1)

Each tick:

1. reads what the exporters wrote since the last tick (``follow.LiveTraces``: new and
   grown files, rotated ones, complete lines only) and, with ``logs``, looks whether the
   log source changed (files: size and mtime; ``docker``: every tick);
2. re-analyzes through the front door (``analysis.conversation_report``) the
   conversations that got new evidence, and those with a message that may have settled
   since: still in flight when its horizon (``in_flight`` after its last evidence) has
   passed, or waiting for its quiet period to end;
3. reports each message whose verdict is not ``in_flight`` and whose evidence has been
   quiet for ``settle`` — the processes of a chain export on their own schedules, so its
   last spans may arrive a second after its first — once, and again only when its
   verdict changes (``Settled.previous`` then holds what was reported before).

A verdict is what ``wsanalyze conversation <id> --at <Settled.at>`` says: the same front
door and rules over the same rows, judged as of the tick (the wall clock, or the newest
span's time when that is later). So a message still waiting ``in_flight`` after its last
evidence settles as lost even when no newer traffic moves the data's end; once newer
evidence exists, ``conversation <id>`` without ``--at`` says the same.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import polars as pl

from ..analysis import AnalysisError, conversation_list, conversation_report
from ..report import MessageVerdict
from ..sources.base import SourceError, default_traces_dir
from ..verdicts import DEFAULT_IN_FLIGHT
from ..verdicts.closecodes import CloseCodes
from .follow import LiveTraces

__all__ = ["DEFAULT_SETTLE", "LiveTraces", "Settled", "Tick", "Watcher"]

DEFAULT_SETTLE = timedelta(seconds=2)
"""Quiet time before a verdict is reported: wstrace's exporters flush every second."""

IN_FLIGHT = "in_flight"
_NEVER = datetime.min.replace(tzinfo=UTC)

Progress = Callable[[str, int, int], None]  # (what: "read" | "judge", done, total)
Key = tuple[str, str]  # (conversation id, message id)
Triple = tuple[str, str | None, str]  # (outcome, hop, cause)


@dataclass(frozen=True)
class Settled:
    """A message whose verdict settled (or changed since it was reported)."""

    conversation_id: str
    message: MessageVerdict
    at: datetime  # the verdict is `conversation <id> --at <at>`'s
    previous: Triple | None = None  # what was reported before, when this is a change

    @property
    def changed(self) -> bool:
        return self.previous is not None


@dataclass
class Tick:
    """One tick: the messages that settled, and what it cost."""

    settled: list[Settled] = field(default_factory=list)
    seconds: float = 0.0
    files_read: int = 0
    bytes_read: int = 0
    analyzed: int = 0  # conversations re-analyzed
    problems: list[str] = field(default_factory=list)  # input problems not said before


class Watcher:
    """The follow / re-analyze / settle loop's state; ``tick()`` once per interval."""

    def __init__(
        self,
        traces: str | None = None,
        logs: str | None = None,
        *,
        in_flight: timedelta = DEFAULT_IN_FLIGHT,
        settle: timedelta = DEFAULT_SETTLE,
        close_codes: CloseCodes | None = None,
        since: datetime | None = None,
    ) -> None:
        self.live = _follow(traces) if traces is not None or logs is None else None
        self.logs = logs
        self.in_flight = in_flight
        self.settle = settle
        self.close_codes = close_codes
        self.since = since
        self.started = time.monotonic()
        self._first = True
        self._msg_changed: dict[Key, datetime] = {}  # when a message's evidence last arrived
        self._conv_changed: dict[str, datetime] = {}  # ... a conversation's message-less rows
        self._msg_last: dict[Key, datetime] = {}  # newest evidence time of a message
        self._newest: dict[str, datetime] = {}  # newest evidence time of a conversation
        self._conv_of: dict[str, str] = {}  # message id -> conversation id
        self._seen: set[Key] = set()  # every message judged
        self._reported: dict[Key, Triple] = {}  # what was reported (or kept quiet) last
        self._backlog: set[Key] = set()  # settled before `since`: kept quiet, not counted
        self._waited: set[Key] = set()  # seen waiting (in flight, or evidence still arriving)
        self._dirty: dict[str, set[str | None]] = {}  # new evidence not judged (None: no message)
        self._wake: dict[str, datetime] = {}  # when a waiting message's horizon passes
        self._log_signature: tuple | None = None
        self._log_keys: dict[str, tuple] = {}
        self._said: set[str] = set()

    @property
    def source(self) -> str:
        """What is followed, for a status line."""
        parts = [str(self.live.path)] if self.live is not None else []
        return " + ".join([*parts, *([f"logs {self.logs}"] if self.logs else [])])

    def close(self) -> None:
        if self.live is not None:
            self.live.close()

    # --- one tick -------------------------------------------------------------------------
    def tick(self, now: datetime | None = None, progress: Progress | None = None) -> Tick:
        """Read what is new, re-analyze the conversations it may settle, return what settled.

        ``progress(what, done, total)`` is told how the first tick's work goes: "read"
        (bytes of the store) then "judge" (conversations).
        """
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        tick = Tick()
        if self.live is not None:
            on_read = partial(progress, "read") if progress and self._first else None
            poll = self.live.poll(on_read)
            tick.files_read, tick.bytes_read = poll.files_read, poll.bytes_read
            tick.problems += self._new_problems(poll.problems)
            self._touch(poll.rows, now)
        at = max(now, self.live.window_end or now) if self.live is not None else now
        if self.logs is not None:
            self._touch_logs(now, at, tick)
        if self._first and self.since is not None:
            # the backlog: conversations quiet since before `since`, none of them in flight
            old = min(self.since, now - self.in_flight)
            for conversation_id in [c for c, t in self._newest.items() if t < old]:
                self._dirty.pop(conversation_id, None)
        ready = [c for c in sorted(set(self._dirty) | set(self._wake)) if self._ready(c, now)]
        for done, conversation_id in enumerate(ready, 1):
            tick.settled += self._judge(conversation_id, now, at, tick)
            tick.analyzed += 1
            if progress is not None and self._first:
                progress("judge", done, len(ready))
        self._first = False
        tick.settled.sort(key=lambda s: (s.message.first_ts or _NEVER, s.conversation_id))
        tick.seconds = time.perf_counter() - started
        return tick

    def _touch(self, rows: pl.DataFrame, now: datetime) -> None:
        """Note when each message's evidence arrived, and that its conversation is to judge."""
        if rows.height == 0:
            return
        for message_id, conversation_id in (
            rows.filter(
                pl.col("conversation_id").is_not_null() & pl.col("message_id").is_not_null()
            )
            .select("message_id", "conversation_id")
            .unique()
            .iter_rows()
        ):
            self._conv_of[message_id] = conversation_id
        groups = rows.group_by("conversation_id", "message_id").agg(
            last=pl.max_horizontal("ts", "end_ts").max()
        )
        for conversation_id, message_id, last in groups.iter_rows():
            conversation_id = conversation_id or self._conv_of.get(message_id or "")
            if conversation_id is None:
                if message_id is None:  # worker facts: a waiting message may settle now
                    self._wake.update(dict.fromkeys(self._wake, now))
                continue
            # what was there before the first tick arrived when it was written
            arrived = min(now, last or now) if self._first else now
            if message_id is None:
                _latest(self._conv_changed, conversation_id, arrived)
            else:
                _latest(self._msg_changed, (conversation_id, message_id), arrived)
                if last is not None:
                    _latest(self._msg_last, (conversation_id, message_id), last)
            if last is not None:
                _latest(self._newest, conversation_id, last)
            self._dirty.setdefault(conversation_id, set()).add(message_id)

    def _touch_logs(self, now: datetime, at: datetime, tick: Tick) -> None:
        """Mark the conversations whose log evidence changed (one front-door listing)."""
        signature = _log_signature(self.logs)
        if signature is not None and signature == self._log_signature:
            return
        self._log_signature = signature
        try:
            rows, problems = conversation_list(
                traces=self.live.address if self.live is not None else None,
                logs=self.logs,
                close_codes=self.close_codes,
                in_flight=self.in_flight,
                at=at,
            )
        except AnalysisError as exc:
            if self._first:
                raise
            tick.problems += self._new_problems([str(exc)])
            return
        tick.problems += self._new_problems(problems)
        for row in rows:
            key = (row.last_ts, row.messages, row.connections)
            if self._log_keys.get(row.conversation_id) == key:
                continue
            self._log_keys[row.conversation_id] = key
            arrived = min(now, row.last_ts or now) if self._first else now
            _latest(self._conv_changed, row.conversation_id, arrived)
            if row.last_ts is not None:
                _latest(self._newest, row.conversation_id, row.last_ts)
            self._dirty.setdefault(row.conversation_id, set()).add(None)

    def _quiet_at(self, conversation_id: str, message_id: str | None) -> datetime:
        """When a message's evidence (and its conversation's own rows) will have been quiet."""
        changed = self._conv_changed.get(conversation_id, _NEVER)
        if message_id is not None:
            changed = max(changed, self._msg_changed.get((conversation_id, message_id), _NEVER))
        return changed + self.settle

    def _ready(self, conversation_id: str, now: datetime) -> bool:
        """Whether judging the conversation now can settle a message: one with new evidence
        has been quiet long enough, or a waiting one's horizon has passed."""
        if conversation_id in self._wake and self._wake[conversation_id] <= now:
            return True
        dirty = self._dirty.get(conversation_id, ())
        return any(self._quiet_at(conversation_id, m) <= now for m in dirty)

    def _judge(
        self, conversation_id: str, now: datetime, at: datetime, tick: Tick
    ) -> list[Settled]:
        """Re-analyze one conversation; its messages that settled; when to look again."""
        self._wake.pop(conversation_id, None)
        dirty = {
            m
            for m in self._dirty.pop(conversation_id, ())
            if self._quiet_at(conversation_id, m) > now
        }
        if dirty:  # still arriving: judged again once quiet
            self._dirty[conversation_id] = dirty
        try:
            report = conversation_report(
                conversation_id,
                traces=self.live.address if self.live is not None else None,
                logs=self.logs,
                close_codes=self.close_codes,
                in_flight=self.in_flight,
                at=at,
            )
        except AnalysisError as exc:
            tick.problems += self._new_problems([f"{conversation_id}: {exc}"])
            return []
        tick.problems += self._new_problems(report.problems)
        wake: list[datetime] = []
        settled: list[Settled] = []
        for message in report.messages:
            key = (conversation_id, message.message_id)
            self._seen.add(key)
            if message.outcome == IN_FLIGHT:
                self._waited.add(key)
                last = self._msg_last.get(key)
                horizon = last + self.in_flight if last is not None else now
                wake.append(max(horizon, now))  # now: the next tick
                continue
            if self._quiet_at(conversation_id, message.message_id) > now:
                self._waited.add(key)
                continue  # still dirty: judged again once quiet
            verdict = (message.outcome, message.hop, message.cause)
            previous = self._reported.get(key)
            if verdict == previous:
                continue
            self._reported[key] = verdict
            if previous is None and self._in_backlog(key, message):
                self._backlog.add(key)  # settled before `since`, before we looked: quiet
                continue
            self._backlog.discard(key)
            settled.append(Settled(conversation_id, message, at, previous))
        if wake:
            self._wake[conversation_id] = min(wake)
        return settled

    def _in_backlog(self, key: Key, message: MessageVerdict) -> bool:
        """Sent before ``since`` and already settled when first judged (never seen waiting)."""
        return key not in self._waited and self._before_since(message)

    def _before_since(self, message: MessageVerdict) -> bool:
        return (
            self.since is not None
            and message.first_ts is not None
            and message.first_ts < self.since
        )

    def _new_problems(self, problems) -> list[str]:
        new = [p for p in dict.fromkeys(problems) if p not in self._said]
        self._said.update(new)
        return new

    # --- what was seen --------------------------------------------------------------------
    def counts(self) -> Counter[str]:
        """Outcomes of the messages reported (their latest report), and ``in_flight``: the
        messages seen but not reported yet."""
        counts: Counter[str] = Counter(
            v[0] for k, v in self._reported.items() if k not in self._backlog
        )
        counts[IN_FLIGHT] = len(self._seen - self._reported.keys())
        return counts

    def top_lost(self) -> tuple[str, str | None, int] | None:
        """The most frequent (cause, hop) of the messages reported lost, with its count."""
        lost = Counter(
            (v[2], v[1])
            for k, v in self._reported.items()
            if v[0] == "lost" and k not in self._backlog
        )
        if not lost:
            return None
        (cause, hop), count = lost.most_common(1)[0]
        return cause, hop, count


def _latest(store: dict, key, moment: datetime) -> None:
    if key not in store or store[key] < moment:
        store[key] = moment


def _follow(traces: str | None) -> LiveTraces:
    """The followed store, or SourceError for what cannot be followed (a URL, a store)."""
    from ..sources.store import is_store

    if traces is not None and "://" in traces:
        raise SourceError(
            f"cannot follow {traces}: watch follows OTLP JSON-lines files (a directory or a file)"
        )
    path = Path(traces) if traces is not None else default_traces_dir()
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:  # a name too long, a symlink loop, a NUL
        raise SourceError(f"cannot follow {str(path)[:200]}: {exc}") from None
    if not exists:
        raise SourceError(
            f"no traces at {path.resolve()}: no such file or directory (pass --traces DIR)"
        )
    if is_store(path):
        raise SourceError(
            f"{path} is a compacted store: watch the directory it was ingested from instead"
        )
    return LiveTraces(path)


def _log_signature(logs: str | None) -> tuple | None:
    """Names, sizes and mtimes of the log files (None for docker: always read)."""
    from ..sources.logs import LogFilesReader

    text = str(logs)
    if text == "docker" or text.startswith("docker:"):
        return None
    try:
        files = LogFilesReader(Path(text)).files()
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except (OSError, SourceError):
        return None
