"""What the remote trace readers (Jaeger, Tempo) share: the spec, JSON over HTTP, the window.

* ``RemoteSpec``: a parsed ``scheme://HOST[:PORT][/PREFIX][?OPTIONS]`` value of
  ``--traces``, with the options every backend takes (``lookback``, ``limit``,
  ``timeout``, ``tls``) and the ones a reader adds;
* ``HttpJson``: GET and decode JSON, every failure one ``SourceError`` line
  naming the URL (``Unreachable`` when the backend did not answer at all);
* ``window_end``: the data window of a live backend.

A backend cannot hold a command up or fill its memory: ``?timeout=`` (default
30 s) bounds a whole read, every request together (a reply trickling in byte by
byte is cut off when it runs out, however often bytes arrive), and a reply body
over ``MAX_REPLY_BYTES`` is refused, read in chunks as it arrives, never whole.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from wsanalyze.sources._otlp.frame import ns_to_datetime
from wsanalyze.sources._otlp.rows import ROW_COLUMNS
from wsanalyze.sources.base import Query, SourceError

DEFAULT_LOOKBACK = "2d"
DEFAULT_LIMIT = 200
DEFAULT_TIMEOUT = 30.0  # seconds for a whole read, every request together
MAX_REPLY_BYTES = 64 << 20  # a reply body larger than this is refused
_READ_BYTES = 1 << 16

_TS, _END_TS = ROW_COLUMNS.index("ts"), ROW_COLUMNS.index("end_ts")


# --- the --traces spec --------------------------------------------------------------


class RemoteSpec:
    """A parsed ``scheme://host:port/prefix?options`` value of ``--traces``."""

    COMMON_OPTIONS = ("lookback", "limit", "timeout", "tls")

    def __init__(
        self, spec: str, scheme: str, default_port: int, extra_options: tuple[str, ...] = ()
    ):
        parts = urllib.parse.urlsplit(spec)
        if parts.scheme.lower() != scheme or not parts.hostname:
            raise SourceError(
                f"bad trace source {spec!r}: expected {scheme}://HOST[:PORT][?options]"
            )
        options = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.options = {key: values[-1] for key, values in options.items()}
        self.all_options = options
        known = (*self.COMMON_OPTIONS, *extra_options)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise SourceError(
                f"bad trace source {spec!r}: unknown option {unknown[0]!r} "
                f"(known: {', '.join(known)})"
            )
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise SourceError(f"bad trace source {spec!r}: {exc}") from None
        http_scheme = "https" if truthy(self.options.get("tls")) else "http"
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        self.base = f"{http_scheme}://{host}:{port}{parts.path.rstrip('/')}"
        self.spec = spec
        self.scheme = scheme
        self.lookback = parse_duration(self.options.get("lookback", DEFAULT_LOOKBACK), spec)
        self.limit = self._int("limit", DEFAULT_LIMIT)
        self.timeout = float(self._int("timeout", int(DEFAULT_TIMEOUT)))

    def _int(self, key: str, default: int) -> int:
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise SourceError(f"bad trace source {self.spec!r}: {key}={raw!r} is not a count")
        return value

    def values(self, key: str) -> list[str]:
        """Every value of a repeatable, comma-separated option."""
        out: list[str] = []
        for raw in self.all_options.get(key, ()):
            out.extend(v.strip() for v in raw.split(",") if v.strip())
        return out

    def window(self, query: Query) -> tuple[datetime, datetime]:
        """(start, end) of the search: the query's window, else the lookback up to now."""
        end = _utc(query.until) if query.until else datetime.now(UTC)
        start = _utc(query.since) if query.since else end - self.lookback
        return start, end


def parse_duration(text: str, spec: str = "") -> timedelta:
    """``90s``, ``15m``, ``2h``, ``2d``, ``1w`` (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not match:
        raise SourceError(f"bad trace source {spec!r}: lookback={text!r} (use e.g. 30m, 2h, 2d)")
    value = float(match.group(1))
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return timedelta(seconds=value * unit)


def truthy(value: object) -> bool:
    """Whether an option or tag value means yes (``1``, ``true``, ``yes``, ``on``)."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- HTTP -----------------------------------------------------------------------------


class Unreachable(SourceError):
    """The backend did not answer at all (refused, timed out, connection dropped)."""


class _TooBig(Exception):
    """The reply body passed MAX_REPLY_BYTES."""


def _watched(base: type, sockets: list) -> type:
    """A connection class of ``base`` that hands every socket it opens to ``sockets``."""

    class Watched(base):
        def connect(self) -> None:
            super().connect()
            sockets.append(self.sock)

    return Watched


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, sockets: list):
        super().__init__()
        self.sockets = sockets

    def http_open(self, req):
        return self.do_open(_watched(http.client.HTTPConnection, self.sockets), req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, sockets: list):
        super().__init__()
        self.sockets = sockets

    def https_open(self, req):
        options = {"context": self._context}
        if hasattr(self, "_check_hostname"):  # Python < 3.12
            options["check_hostname"] = self._check_hostname
        return self.do_open(_watched(http.client.HTTPSConnection, self.sockets), req, **options)


class _Deadline:
    """Cuts the sockets of one request when the read's time is up (a trickle never ends)."""

    def __init__(self, seconds: float):
        self.sockets: list = []
        self.expired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        self.expired = True
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class HttpJson:
    """GET JSON from one backend; every failure is a one-line SourceError naming the URL.

    ``timeout`` bounds every request made within ``budget()`` together (each request
    alone outside it); a reply body over ``max_bytes`` is an error.
    """

    def __init__(
        self,
        base: str,
        label: str,
        timeout: float,
        headers: dict | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ):
        self.base = base
        self.label = label
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.deadline: float | None = None
        self.headers = {
            "Accept": "application/json",
            "User-Agent": "wsanalyze",
            **(headers or {}),
        }

    @contextlib.contextmanager
    def budget(self) -> Iterator[None]:
        """Within the block, the requests share ``timeout`` seconds (a reader's one read)."""
        self.deadline = time.monotonic() + self.timeout
        try:
            yield
        finally:
            self.deadline = None

    def url(self, path: str, params: dict | None = None) -> str:
        query = urllib.parse.urlencode(params or {}, quote_via=urllib.parse.quote)
        return f"{self.base}{path}" + (f"?{query}" if query else "")

    def _timed_out(self, url: str) -> Unreachable:
        return Unreachable(
            f"{self.label} at {self.base} is unreachable: GET {url}: timed out after "
            f"{self.timeout:g}s without a complete reply (?timeout= bounds the whole read)"
        )

    def get(self, path: str, params: dict | None = None, *, missing_ok: bool = False) -> object:
        """The decoded JSON reply; None for a 404 when ``missing_ok``."""
        url = self.url(path, params)
        deadline = self.deadline if self.deadline is not None else time.monotonic() + self.timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(url)
        request = urllib.request.Request(url, headers=self.headers)
        with _Deadline(remaining) as watch:
            opener = urllib.request.build_opener(
                _HttpHandler(watch.sockets), _HttpsHandler(watch.sockets)
            )
            try:
                with opener.open(request, timeout=remaining) as reply:
                    body = self._read(reply, deadline)
            except urllib.error.HTTPError as exc:
                if missing_ok and exc.code == 404:
                    return None
                detail = "" if watch.expired else one_line(_body(exc), 200)
                raise SourceError(
                    f"{self.label} at {self.base}: GET {url} returned HTTP {exc.code}"
                    + (f": {detail}" if detail else "")
                ) from None
            except _TooBig:
                raise SourceError(
                    f"{self.label} at {self.base}: GET {url}: reply larger than "
                    f"{self.max_bytes >> 20} MiB, the limit (narrow the search: --since, "
                    f"?lookback=, ?limit=)"
                ) from None
            except urllib.error.URLError as exc:
                if watch.expired or isinstance(exc.reason, TimeoutError):
                    raise self._timed_out(url) from None
                raise Unreachable(
                    f"{self.label} at {self.base} is unreachable: GET {url}: {_reason(exc.reason)}"
                ) from None
            except (TimeoutError, http.client.HTTPException, OSError) as exc:
                if watch.expired or isinstance(exc, TimeoutError):
                    raise self._timed_out(url) from None
                raise Unreachable(
                    f"{self.label} at {self.base} is unreachable: GET {url}: {_reason(exc)}"
                ) from None
            if watch.expired:  # the body ended because its socket was cut
                raise self._timed_out(url)
        try:
            return json.loads(body)
        except ValueError as exc:
            start = one_line(bytes(body[:60]).decode("utf-8", "replace"), 60)
            raise SourceError(
                f"{self.label} at {self.base}: GET {url} did not return JSON "
                f"({type(exc).__name__}: {one_line(str(exc), 80)}; reply starts {start!r})"
            ) from None

    def _read(self, reply, deadline: float) -> bytearray:
        """The reply body, read as it arrives, at most ``max_bytes``; _TooBig past that."""
        length = reply.headers.get("Content-Length")
        if length and length.strip().isdigit() and int(length) > self.max_bytes:
            raise _TooBig
        body = bytearray()
        while time.monotonic() < deadline:
            piece = reply.read1(_READ_BYTES)
            if not piece:
                break
            body += piece
            if len(body) > self.max_bytes:
                raise _TooBig
        else:
            raise TimeoutError("deadline")
        return body


def _body(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(400).decode("utf-8", "replace")
    except Exception:
        return ""


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return one_line(reason.strerror, 120)
    return one_line(str(reason) or type(reason).__name__, 120)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (for error messages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the data window ----------------------------------------------------------------------


def window_end(rows: list[tuple], end: datetime) -> datetime | None:
    """The data window of a live backend: up to the end of the search (or later spans)."""
    latest = max((row[_END_TS] or row[_TS] or 0 for row in rows), default=0)
    latest_dt = ns_to_datetime(latest) if latest else None
    now = datetime.now(UTC)
    bound = min(end, now)
    return max(bound, latest_dt) if latest_dt else bound
