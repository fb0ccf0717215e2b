"""Grafana Tempo's HTTP API → the event table: ``--traces tempo://host:port``.

Spec: ``tempo://HOST[:PORT][/PREFIX][?OPTIONS]`` (port 3200 by default). Options:

``lookback=2d``   search window when the command gives no ``--since``
``limit=200``     traces per search (Tempo's ``limit``)
``timeout=30``    seconds for the whole read, every request together
``tenant=ID``     sent as ``X-Scope-OrgID`` (multi-tenant Tempo)
``tls=1``         https instead of http

A conversation lookup is a TraceQL search,
``GET /api/search?q={ span.ws.conversation_id = "ID" }&start=&end=&limit=``
(Unix seconds), then each trace it names is fetched whole with
``GET /api/v2/traces/<id>`` (``{"trace": {"resourceSpans": …}}``), falling back
to ``GET /api/traces/<id>`` (``{"batches": …}``) on a Tempo without the v2 API.
Search ids may have lost their leading zeros and trace bodies carry base64 ids
and enum names; the shared OTLP normalizer (``_otlp``) accepts all of that.
Without a conversation the search is ``{}`` (every trace of the window).

Errors: an unreachable Tempo, an HTTP error, a reply that is not JSON or is
larger than ``_http.MAX_REPLY_BYTES`` on the search, or a read that outlasts
``timeout``, raises ``SourceError`` with one line naming the URL; a trace that
cannot be fetched afterwards (or is too large) becomes a problem line and the
others are kept, as does a span that cannot be a row.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from wstrace import conventions as C

from wsanalyze.sources._http import HttpJson, RemoteSpec, Unreachable, window_end
from wsanalyze.sources._otlp.frame import rows_to_frame
from wsanalyze.sources._otlp.rows import BadSpan, iter_spans, span_row
from wsanalyze.sources._otlp.values import norm_id
from wsanalyze.sources.base import Query, ReadResult, SourceError, register_scheme

DEFAULT_PORT = 3200
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def traceql(conversation_id: str | None) -> str:
    """The TraceQL search for one conversation (``{}`` for all traces)."""
    if conversation_id is None:
        return "{}"
    literal = json.dumps(conversation_id, ensure_ascii=False)
    return f"{{ span.{C.CONVERSATION_ID} = {literal} }}"


def search_id(value: object) -> str | None:
    """A search result's trace id as 32 hex digits (Tempo drops leading zeros)."""
    if isinstance(value, str) and 0 < len(value) <= 32 and _HEX.match(value):
        return value.lower().rjust(32, "0")
    return norm_id(value, 16)


class TempoReader:
    """Spans from Tempo's search and trace-by-id APIs (``tempo://host:port``)."""

    def __init__(self, spec: str):
        self.spec = RemoteSpec(spec, "tempo", DEFAULT_PORT, ("tenant",))
        tenant = self.spec.options.get("tenant")
        headers = {"X-Scope-OrgID": tenant} if tenant else None
        self.http = HttpJson(self.spec.base, "tempo", self.spec.timeout, headers)
        self.description = f"Tempo API at {self.spec.base}"
        self._v1_only = False

    def search(self, query: Query) -> tuple[str, list[str], list[str]]:
        """(url, trace ids as 32 hex, problems) of the TraceQL search."""
        start, end = self.spec.window(query)
        params = {
            "q": traceql(query.conversation_id),
            "start": int(start.timestamp()),
            "end": int(end.timestamp()) + 1,
            "limit": self.spec.limit,
        }
        url = self.http.url("/api/search", params)
        doc = self.http.get("/api/search", params)
        if not isinstance(doc, dict) or not isinstance(doc.get("traces") or [], list):
            raise SourceError(
                f'tempo at {self.spec.base}: GET {url} did not return Tempo\'s {{"traces": [...]}} reply'
            )
        ids: list[str] = []
        for item in doc.get("traces") or ():
            tid = search_id(item.get("traceID")) if isinstance(item, dict) else None
            if tid and tid not in ids:
                ids.append(tid)
        problems = []
        if len(ids) >= self.spec.limit:
            problems.append(
                f"{url}: {len(ids)} traces, the limit; older ones may be missing "
                f"(raise ?limit= or narrow the window)"
            )
        return url, ids, problems

    def fetch(self, trace_id: str) -> tuple[str, object | None]:
        """(url, decoded trace) by id: the v2 API, else v1; None when Tempo has no such trace."""
        if not self._v1_only:
            path = f"/api/v2/traces/{trace_id}"
            doc = self.http.get(path, missing_ok=True)
            if doc is not None:
                return self.http.url(path), doc
        path = f"/api/traces/{trace_id}"
        doc = self.http.get(path, missing_ok=True)
        if doc is not None and not self._v1_only:
            self._v1_only = True  # v2 answered 404 where v1 has the trace: an older Tempo
        return self.http.url(path), doc

    def trace_rows(self, trace_id: str) -> tuple[list[tuple], list[str]]:
        """Rows of one trace, or the problem that kept it out."""
        try:
            url, doc = self.fetch(trace_id)
        except Unreachable:
            raise
        except SourceError as exc:
            return [], [str(exc)]
        if doc is None:
            return [], [f"{self.spec.base}/api/v2/traces/{trace_id}: Tempo has no such trace"]
        try:
            pairs = list(iter_spans(doc))
        except ValueError as exc:
            return [], [f"{url}: not a trace ({exc})"]
        rows, bad, reason = [], 0, None
        for service, span in pairs:
            try:
                rows.append(span_row(span, service, url))
            except BadSpan as exc:
                bad += 1
                reason = reason or str(exc)
            except Exception:
                bad += 1
        why = f" ({reason})" if reason else ""
        problems = [f"{url}: {bad} span(s) could not be decoded{why}"] if bad else []
        return rows, problems

    def read(self, query: Query) -> ReadResult:
        """The spans of every trace the search names, one row each."""
        if query.conversation_id is None and query.by_message:
            # No search by message id here (load_events does not ask); without a
            # conversation the search would fetch every trace of the lookback instead.
            return ReadResult(events=rows_to_frame([]).lazy())
        with self.http.budget():  # ?timeout= bounds this whole read
            return self._read(query)

    def _read(self, query: Query) -> ReadResult:
        _, end = self.spec.window(query)
        url, ids, problems = self.search(query)
        rows: list[tuple] = []
        if ids:
            with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
                for found, bad in pool.map(self.trace_rows, ids):
                    rows.extend(found)
                    problems.extend(bad)
        return ReadResult(
            events=rows_to_frame(rows, problems).lazy(),
            problems=problems,
            sources=[url],
            window_end=window_end(rows, end),
        )


register_scheme("tempo", TempoReader)
