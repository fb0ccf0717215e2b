"""Connections from Daphne access lines and the app's own open / close / reject lines."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta

import polars as pl
from wstrace import conventions as c

from ._rows import (
    _UNAVAILABLE,
    _WHOLE,
    PRODUCERS,
    _line,
    _row,
    _server_code,
    _traced_conversations,
    _whole,
    raw_log,
    weakest,
)


class Conns(list):
    """Daphne access runs (dicts), indexed by conversation and by connection id: every
    line looks up its conversation's few connections, never all of them."""

    def __init__(self, rows: list[dict]):
        super().__init__(rows)
        self.by_id = {k["connection_id"]: k for k in rows}
        self._by_conv: dict[str | None, list[dict]] = {}
        for k in rows:
            self._by_conv.setdefault(k["conversation_id"], []).append(k)

    def of(self, conversation: str | None) -> list[dict]:
        return self._by_conv.get(conversation, [])


def log_connections(frame: pl.DataFrame) -> Conns:
    """Daphne access runs with their connection ids (conversations without spans only)."""
    from ...logparse.correlate import connections

    logs = frame.filter(raw_log())
    conns = connections(logs)
    traced = _traced_conversations(frame)
    out = []
    seen: dict[tuple, int] = {}
    counts = conns.group_by("service", "client").len()
    many = {(r["service"], r["client"]) for r in counts.iter_rows(named=True) if r["len"] > 1}
    for conn in conns.iter_rows(named=True):
        if conn["conversation_id"] in traced:
            continue
        key = (conn["service"], conn["client"])
        seen[key] = seen.get(key, 0) + 1
        cid = f"{conn['service']}:{conn['client']}"
        if key in many:
            cid += f"#{seen[key]}"
        out.append({**conn, "connection_id": cid})
    return Conns(out)


def _open_at(
    conns: Conns, conversation: str | None, ts: datetime, after: timedelta = timedelta(0)
) -> list[dict]:
    """The conversation's connections that may have been open at ``ts`` (whole seconds widen;
    ``after``: how long past its close a line of that socket may still be stamped)."""
    found = []
    for k in conns.of(conversation):
        start = k["accepted"] or k["connecting"] or k["rejected"]
        end = k["disconnected"] or k["rejected"]
        if start is None:
            continue
        lo = start - (_WHOLE if _whole(start) else timedelta(0))
        hi = None if end is None else end + (_WHOLE if _whole(end) else after)
        if lo <= ts and (hi is None or ts <= hi):
            found.append(k)
    return found


def _access_lines(logs: pl.DataFrame) -> dict[tuple, tuple[list, list[dict]]]:
    """(service, client) → (their times, Daphne's access lines), in time order: one pass,
    so each connection finds its lines by bisection."""
    access = (
        logs.filter((pl.col("name") == "daphne") & pl.col("event").str.starts_with("ws_"))
        .with_columns(pl.col("attributes").str.json_path_match("$.client").alias("_client"))
        .sort("ts")
    )
    out: dict[tuple, tuple[list, list[dict]]] = {}
    for r in access.iter_rows(named=True):
        times, rows = out.setdefault((r["service"], r["_client"]), ([], []))
        times.append(r["ts"])
        rows.append(r)
    return out


def _connection_rows(frame: pl.DataFrame, conns: Conns | None = None) -> list[dict]:
    conns = log_connections(frame) if conns is None else conns
    logs = frame.filter(raw_log())
    closes = _app_closes(logs)
    crashes = logs.filter(
        (pl.col("event") == "app_exception") & pl.col("conversation_id").is_not_null()
    ).to_dicts()
    by_id = conns.by_id
    close_of: dict[str, dict] = {}
    crash_of: dict[str, dict] = {}
    app_only: dict[tuple, list[dict]] = {}
    for line in closes:
        if line.get("event") == c.EV_REJECT:  # says why a handshake was refused
            found = _refused_near(conns, line)
            if found is not None:
                close_of.setdefault(found["connection_id"], line)
            continue
        found = _open_at(conns, line["conversation_id"], line["ts"])
        if len(found) > 1:  # the one that closed first at or after the line
            later = [k for k in found if k["disconnected"] and k["disconnected"] >= line["ts"]]
            found = sorted(later, key=lambda k: k["disconnected"])[:1] if later else []
        if found:
            close_of.setdefault(found[0]["connection_id"], line)
        elif not conns.of(line["conversation_id"]):
            app_only.setdefault((line["service"], line["conversation_id"]), []).append(line)
    for line in crashes:
        found = _open_at(conns, line["conversation_id"], line["ts"])
        if len(found) == 1:
            crash_of.setdefault(found[0]["connection_id"], line)
    access = _access_lines(logs)
    out: list[dict] = []
    for cid, k in by_id.items():
        times, rows = access.get((k["service"], k["client"]), ([], []))
        lo = k["connecting"] or k["accepted"] or k["rejected"]
        hi = k["disconnected"] or k["rejected"] or k["accepted"] or k["connecting"]
        lines = rows[bisect_left(times, lo) : bisect_right(times, hi)] if lo and hi else []
        conf = weakest(*[r.get("confidence") for r in lines]) or "path"
        base = dict(
            service=k["service"], conversation_id=k["conversation_id"], connection_id=cid,
            confidence=conf, name="daphne",
        )  # fmt: skip
        text = "\n".join(_line(r) for r in lines)
        start = k["connecting"] or k["accepted"] or k["rejected"]
        out.append(
            _row(**base, ts=start, end_ts=k["accepted"] or k["rejected"], hop=c.HOP_CONNECT,
                 event=c.EV_CONNECT, status="ok" if k["accepted"] else "unset", detail=text)
        )  # fmt: skip
        close, crash = close_of.get(cid), crash_of.get(cid)
        code = close.get("close_code") if close else None
        if k["rejected"] is not None:
            out.append(
                _row(**{**base, "confidence": weakest(conf, close and close.get("confidence"))},
                     ts=k["rejected"], hop=c.HOP_CONNECT, event=c.EV_REJECT, status="error",
                     handshake_rejected=True, accepted=False, closed_by="server",
                     close_code=code, cause=close.get("cause") if close else None,
                     detail="\n".join(filter(None, [text, close and _line(close)])))
            )  # fmt: skip
            continue
        if k["accepted"] is not None:
            out.append(
                _row(**base, ts=k["accepted"], hop=c.HOP_ACCEPT, event=c.EV_ACCEPT, status="ok",
                     accepted=True, detail=text)
            )  # fmt: skip
        if crash is not None:
            out.append(
                _row(**{**base, "confidence": weakest(conf, crash.get("confidence") or "time")},
                     ts=k["disconnected"] or crash["ts"], hop=c.HOP_DISCONNECT,
                     event=c.EV_DISCONNECT, status="error", close_code=1011, closed_by="server",
                     cause=_crash_cause(crash), exception=crash.get("exception"),
                     detail="\n".join([_line(crash), text]))
            )  # fmt: skip
            continue
        out += _close_rows(base, conf, close, k["disconnected"], text)
    for (service, conversation), lines in app_only.items():
        line = lines[0]
        first = logs.filter(
            (pl.col("conversation_id") == conversation) & (pl.col("service") == service)
        )["ts"].min()
        base = dict(service=service, conversation_id=conversation, name="app",
                    connection_id=f"{service}:{conversation}",
                    confidence=line.get("confidence") or "time")  # fmt: skip
        out.append(
            _row(**base, ts=first, hop=c.HOP_ACCEPT, event=c.EV_ACCEPT, status="ok",
                 accepted=True, detail=_line(line))
        )  # fmt: skip
        out += _close_rows(base, base["confidence"], line, line["ts"], "")
    return out


STREAM_SLACK = timedelta(seconds=2)
"""How far an app line about a socket may sit past Daphne's access lines for it: engine
stamps of stdout and stderr are taken as each stream is read, so the app's line (why a
handshake was refused, an answer sent just before the client left) can land just after
the access line it belongs before."""


def _refused_near(conns: Conns, line: dict) -> dict | None:
    """The conversation's refused handshake on the line's service nearest the line."""
    near = [
        k for k in conns.of(line["conversation_id"])
        if k["rejected"] is not None and k["service"] == line.get("service")
        and abs(k["rejected"] - line["ts"]) <= STREAM_SLACK + _WHOLE * _whole(k["rejected"])
    ]  # fmt: skip
    return min(near, key=lambda k: abs(k["rejected"] - line["ts"])) if near else None


def _crash_cause(crash: dict) -> str:
    """A consumer that died of a Redis connection error lost its channel layer (its own
    receive and group calls go through it); any other exception is the consumer's."""
    import re

    text = " ".join(filter(None, [crash.get("exception"), crash.get("detail")]))
    return "channel_layer_unavailable" if re.search(_UNAVAILABLE, text) else "consumer_error"


def _close_rows(base, conf, close, disconnected, text) -> list[dict]:
    """The disconnect (and, for a server's code, the close) of a connection."""
    out = []
    code = close.get("close_code") if close else None
    server = _server_code(code)
    if close is not None and server:
        out.append(
            _row(**{**base, "confidence": weakest(conf, close.get("confidence"))},
                 ts=close["ts"], hop=c.HOP_DISCONNECT, event=c.EV_CLOSE, status="ok",
                 close_code=code, closed_by="server", cause=close.get("cause"),
                 detail=_line(close))
        )  # fmt: skip
    if disconnected is not None or close is not None:
        closer = None if close is None else ("server" if server else "client")
        # the app's line is stamped to the ms; Daphne's access line to the whole second
        when = close["ts"] if close is not None else disconnected
        out.append(
            _row(**{**base, "confidence": weakest(conf, close and close.get("confidence"))},
                 ts=when, hop=c.HOP_DISCONNECT, event=c.EV_DISCONNECT,
                 status="ok", close_code=code, closed_by=closer,
                 detail="\n".join(filter(None, [close and _line(close), text])))
        )  # fmt: skip
    return out


def _app_closes(logs: pl.DataFrame) -> list[dict]:
    """The app's own lines that name a conversation and a close code, or a refused handshake."""
    return (
        logs.filter(
            ~pl.col("name").is_in(PRODUCERS).fill_null(False)
            & (pl.col("close_code").is_not_null() | (pl.col("event") == c.EV_REJECT))
            & pl.col("conversation_id").is_not_null()
        )
        .sort("ts")
        .to_dicts()
    )
