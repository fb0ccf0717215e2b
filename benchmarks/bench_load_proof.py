"""Proof under load: the example chat app with hundreds of sockets, real losses, scored verdicts.

::

    .venv/bin/python benchmarks/bench_load_proof.py --connections 300 --messages 5
    .venv/bin/python benchmarks/bench_load_proof.py --connections 500 --messages 20   # the soak
    .venv/bin/python benchmarks/bench_load_proof.py --quick                          # 20 x 3, ~1 min

One real stack (``wsanalyze.demo.stack.Stack``): an embedded Redis, Daphne serving
``examples/chatapp``, a Celery prefork worker, the core ``RedisChannelLayer``.
wstrace is on with two exporters: the file store (what the analyzer reads) and
OTLP pointed at a local port nothing listens on (connection refused for the
whole run). ``--connections`` clients (``load_clients.py``) each open one socket
in a conversation of their own and send ``--messages`` messages one after the
other; every ``--fault-every``-th connection plants one real loss with the app's
fault switches (task_failed, client_disconnected, no_worker, consumer_gone,
consumer_error, in turn), and once ``--gap-at`` of the messages are out the
worker is stopped (warm shutdown) and started again ``--worker-gap`` seconds
later, so the messages sent meanwhile wait in the queue (delayed, not lost).

Each client records what it sent and what it read. After the load the stack is
stopped (SIGTERM: every process flushes its spans), then:

* ``wsanalyze conversations --traces DIR --json`` (the real CLI, with
  ``WSANALYZE_STRICT_INVARIANTS=1``): per-conversation lost / delivered counts;
* the per-message verdicts of the same engine over the whole table
  (``message_verdicts`` after ``log_chains``, what ``conversations`` and ``lost``
  compute), one row per message: these are scored;
* ``conversation_report`` (the front door of ``wsanalyze conversation ID``) for
  every conversation with a planted fault or a disagreement, plus ``--sample``
  healthy ones, and the real ``wsanalyze conversation ID --json`` for
  ``--cli-checks`` of them: both must agree with the bulk verdicts.

Truth: a sent message is lost when the client did not read its ``done`` and every
chunk it announces. Reported: recall and precision of ``lost`` against that truth
(both must be 100 %), sent messages the analyzer does not know, ``in_flight`` and
``unknown`` verdicts, peak RSS of Daphne and of the worker (main process +
prefork children, sampled from /proc), wall time and messages/s of the load, and
the exporter-down log lines per process (one per outage expected). Exit status 0
only when recall and precision are 100 %, no sent message is unknown, the checks
agree, and every refused handshake is judged rejected.

Controls: ``--otlp off`` (the file exporter only), ``--wstrace off`` (no
instrumentation: the client truth, memory and throughput alone). Results go to
``benchmarks/results/load_proof_CxM[_off|_file_only].json``; ``--keep DIR`` keeps
each run's traces and logs under ``DIR/run-ID``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import load_clients as lc
from wsanalyze.demo.processes import HOST, POLL, StackError, free_port
from wsanalyze.demo.redis_server import RedisServer
from wsanalyze.demo.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
RESULTS = ROOT / "benchmarks" / "results"
TICKS = os.sysconf("SC_CLK_TCK")
EXPORT_DOWN = "wstrace: cannot export spans"
# Celery's worker log format: "[stamp: LEVEL/ProcessName] message"
CELERY_PROCESS = re.compile(r"/([\w-]+)\]\s*" + re.escape(EXPORT_DOWN))
# The SDK's batch processor, once per process (wstrace's filter): which processor it was
# (file or OTLP) the line does not say; a dropped file-store span would show as a verdict.
SDK_QUEUE_FULL = "Queue full, dropping"


# --- processes and memory ---------------------------------------------------------------
def _proc_groups() -> dict[int, list[int]]:
    """pids by process group id (Stack starts every service as a session leader)."""
    groups: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        groups.setdefault(int(fields[2]), []).append(int(stat.parent.name))
    return groups


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def _status_kib(pid: int, key: str, where: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{where}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Peak resident memory of each service: the sampled sum over its process group.

    ``VmHWM`` (each process's own exact peak) is kept too: Daphne is one process, so
    its VmHWM is its exact peak; the worker's sum of main + children can only be sampled.
    """

    def __init__(self, stack: Stack, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.interval = interval
        self.peak_sum: dict[str, int] = {}
        self.peak_pss: dict[str, int] = {}
        self.hwm: dict[str, dict[int, int]] = {}  # service -> pid -> VmHWM KiB
        self.processes: dict[str, set[int]] = {}
        self.cpu_ticks: dict[str, dict[int, int]] = {}  # service -> pid -> utime + stime
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        leaders = {proc.pid: name for name, proc in dict(self.stack.procs).items()}
        for pgid, pids in _proc_groups().items():
            service = leaders.get(pgid)
            if service is None:
                continue
            total = pss = 0
            for pid in pids:
                ticks = _cpu_ticks(pid)
                seen = self.cpu_ticks.setdefault(service, {})
                seen[pid] = max(seen.get(pid, 0), ticks)
                total += _status_kib(pid, "VmRSS")
                # prefork children share the parent's pages: RSS counts them once per
                # process, PSS splits them, so the PSS sum is what the group really holds
                pss += _status_kib(pid, "Pss", "smaps_rollup")
                hwm = _status_kib(pid, "VmHWM")
                known = self.hwm.setdefault(service, {})
                known[pid] = max(known.get(pid, 0), hwm)
                self.processes.setdefault(service, set()).add(pid)
            self.peak_sum[service] = max(self.peak_sum.get(service, 0), total)
            self.peak_pss[service] = max(self.peak_pss.get(service, 0), pss)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def summary(self) -> dict[str, Any]:
        out = {}
        for service in sorted(self.peak_sum):
            hwm = self.hwm.get(service, {})
            out[service] = {
                "peak_rss_mib": round(self.peak_sum[service] / 1024, 1),
                "peak_pss_mib": round(self.peak_pss.get(service, 0) / 1024, 1),
                "max_process_hwm_mib": round(max(hwm.values(), default=0) / 1024, 1),
                "processes_seen": len(self.processes.get(service, ())),
                # a process's last sample: up to one interval of its CPU may be missing
                "cpu_s": round(sum(self.cpu_ticks.get(service, {}).values()) / TICKS, 1),
            }
        return out


def restart_worker(stack: Stack, timeout: float = 60.0) -> float:
    """Start the worker again as ``Stack.launch`` does; return seconds until it said ready."""
    started = time.monotonic()
    offset = stack.worker_log.stat().st_size if stack.worker_log.exists() else 0
    env = dict(os.environ)
    own = stack.process_env("worker")
    if os.environ.get("PYTHONPATH"):
        own["PYTHONPATH"] = os.pathsep.join([own["PYTHONPATH"], os.environ["PYTHONPATH"]])
    env.update(own)
    with open(stack.worker_log, "ab") as out:
        stack.procs["worker"] = subprocess.Popen(
            stack.worker_command(),
            cwd=stack.app_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    while time.monotonic() - started < timeout:
        with open(stack.worker_log, "rb") as log:
            log.seek(offset)
            if b" ready." in log.read():
                return time.monotonic() - started
        if stack.procs["worker"].poll() is not None:
            raise StackError(f"restarted worker exited\n{stack.log_tail('worker')}")
        time.sleep(POLL)
    raise StackError(f"restarted worker not ready after {timeout}s")


# --- the load ---------------------------------------------------------------------------
@dataclass
class GapLog:
    """When the worker was away: stop asked, stopped, started again, ready (load-relative s)."""

    planned: bool = False
    stop_at: float | None = None
    stopped_at: float | None = None
    restart_at: float | None = None
    ready_at: float | None = None
    worker_log_offset: int = 0  # where the second worker's lines begin
    sent_before_stop: int = 0


@dataclass
class LoadResult:
    """Every client's record, and how long the load took."""

    records: list[lc.ClientRecord]
    wall_s: float
    started: float  # time.monotonic() at the start
    gap: GapLog
    open_errors: int = 0


async def _load(
    stack: Stack, plans: list[lc.ConnectionPlan], pacing: lc.Pacing, args: argparse.Namespace
) -> LoadResult:
    import redis.asyncio as aioredis  # the demo extra ships it

    token = stack.token(1, "load")
    total = sum(len(p.messages) for p in plans)
    sent = [0]

    def on_sent() -> None:
        sent[0] += 1

    gap = GapLog(planned=args.worker_gap > 0)
    started = time.monotonic()
    clients_done = asyncio.Event()

    async def worker_gap() -> None:
        threshold = int(total * args.gap_at)
        while sent[0] < threshold and not clients_done.is_set():
            await asyncio.sleep(0.1)
        if clients_done.is_set():
            gap.planned = False
            return
        gap.sent_before_stop = sent[0]
        gap.stop_at = time.monotonic() - started
        await asyncio.to_thread(stack.stop_worker)
        gap.stopped_at = time.monotonic() - started
        await asyncio.sleep(args.worker_gap)
        gap.restart_at = time.monotonic() - started
        gap.worker_log_offset = stack.worker_log.stat().st_size
        await asyncio.to_thread(restart_worker, stack)
        gap.ready_at = time.monotonic() - started

    # a blocking pool: redis-py 8's default pool raises once its connections are all busy
    pool = aioredis.BlockingConnectionPool.from_url(stack.redis_url, max_connections=32)
    client = aioredis.Redis(connection_pool=pool)
    gapper = asyncio.create_task(worker_gap()) if gap.planned else None
    # a storm of handshakes exhausts the web process's channel-layer pool (redis-py 8's
    # asyncio pool holds 100 connections and raises rather than waits): HTTP 500
    ramp = args.ramp if args.ramp is not None else len(plans) / 50
    try:
        records = await asyncio.gather(
            *(
                lc.run_client(
                    stack.ws_url(plan.conversation_id, token),
                    plan,
                    pacing,
                    client,
                    on_sent,
                    start_delay=ramp * plan.index / max(1, len(plans)),
                )
                for plan in plans
            )
        )
    finally:
        clients_done.set()
        if gapper is not None:
            await gapper  # a restart in progress must finish before the stack stops
        await client.aclose()
        await pool.disconnect()
    wall = time.monotonic() - started
    return LoadResult(
        records=list(records),
        wall_s=wall,
        started=started,
        gap=gap,
        open_errors=sum(1 for r in records if not r.connected),
    )


# --- logs -------------------------------------------------------------------------------
def outage_lines(stack: Stack, gap: GapLog) -> dict[str, Any]:
    """Exporter-down lines per process: Daphne's log, and each worker incarnation by process."""
    web = stack.log_text("web")
    raw = stack.worker_log.read_bytes() if stack.worker_log.exists() else b""
    cut = gap.worker_log_offset if gap.restart_at is not None else len(raw)
    parts = [raw[:cut], raw[cut:]] if cut < len(raw) else [raw]
    workers = []
    for part in parts:
        text = part.decode(errors="replace")
        workers.append(dict(Counter(CELERY_PROCESS.findall(text))))
    counts = [web.count(EXPORT_DOWN)] + [n for w in workers for n in w.values()]
    both = web + raw.decode(errors="replace")
    return {
        "web": web.count(EXPORT_DOWN),
        "worker": workers,
        "total": sum(counts),
        "processes_logging": len(counts) - (0 if web.count(EXPORT_DOWN) else 1),
        "max_per_process": max(counts, default=0),
        "recovered_lines": both.count("answers again"),
        "sdk_queue_full_lines": both.count(SDK_QUEUE_FULL),
        "other_wstrace_lines": sum(
            1 for line in both.splitlines() if "wstrace:" in line and EXPORT_DOWN not in line
        ),
    }


# --- the analyzer -----------------------------------------------------------------------
def _timed(
    cmd: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess, float, int | None]:
    timer = shutil.which("time") or "/usr/bin/time"
    wrapped = [timer, "-v", *cmd] if os.path.exists(timer) else cmd
    started = time.perf_counter()
    proc = subprocess.run(wrapped, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - started
    rss = None
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) * 1024
    return proc, wall, rss


def analyzer_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["WSANALYZE_STRICT_INVARIANTS"] = "1"  # a verdict contradicting its evidence raises
    env["WSANALYZE_STORE"] = str(workdir / "no-store")  # raw files, as written
    return env


def wsanalyze_cli() -> list[str]:
    found = shutil.which("wsanalyze", path=os.path.dirname(PY))
    return [found] if found else [PY, "-m", "wsanalyze.cli"]


def cli_conversations(trace_dir: Path, workdir: Path) -> dict[str, Any]:
    cmd = [*wsanalyze_cli(), "conversations", "--traces", str(trace_dir), "--json"]
    proc, wall, rss = _timed(cmd, analyzer_env(workdir), workdir)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"wsanalyze conversations failed ({proc.returncode}):\n{tail}")
    return {"rows": json.loads(proc.stdout), "seconds": wall, "rss": rss}


def bulk_message_verdicts(trace_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every message's verdict in one pass of the engine (what ``conversations`` computes)."""
    import polars as pl
    from wsanalyze.sources import load_events
    from wsanalyze.verdicts.engine import message_verdicts, window_end_of
    from wsanalyze.verdicts.logchains import log_chains

    started = time.perf_counter()
    loaded = load_events(str(trace_dir))
    events = log_chains(loaded.events.collect().lazy())
    end = window_end_of(events, loaded.window_end)
    frame = (
        message_verdicts(events, window_end=end)
        .select(
            "conversation_id",
            "message_id",
            "connection_id",
            "outcome",
            "hop",
            "cause",
            "rule",
            "confidence",
            "violations",
        )
        .collect()
    )
    spans = events.select(pl.len()).collect().item()
    out: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for row in frame.iter_rows(named=True):
        if row["message_id"] in out:
            duplicates += 1
        row["violations"] = list(row["violations"] or [])
        out[row["message_id"]] = row
    meta = {
        "seconds": time.perf_counter() - started,
        "rows": frame.height,
        "events": spans,
        "duplicate_message_rows": duplicates,
        "problems": list(loaded.problems)[:10],
        "window_end": str(end),
    }
    return out, meta


def front_door_check(
    trace_dir: Path, conversation_ids: list[str], bulk: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``conversation_report`` per conversation: must give each message the bulk verdict."""
    from wsanalyze.analysis import conversation_report

    started = time.perf_counter()
    disagreements = []
    messages = 0
    for cid in conversation_ids:
        report = conversation_report(cid, traces=str(trace_dir))
        for m in report.messages:
            messages += 1
            b = bulk.get(m.message_id, {})
            if (m.outcome, m.hop, m.cause) != (b.get("outcome"), b.get("hop"), b.get("cause")):
                disagreements.append(
                    {
                        "conversation_id": cid,
                        "message_id": m.message_id,
                        "report": [m.outcome, m.hop, m.cause, m.rule],
                        "bulk": [b.get("outcome"), b.get("hop"), b.get("cause"), b.get("rule")],
                    }
                )
    return {
        "conversations": len(conversation_ids),
        "messages": messages,
        "disagreements": disagreements,
        "seconds": time.perf_counter() - started,
    }


def cli_conversation_check(
    trace_dir: Path, workdir: Path, conversation_ids: list[str], bulk: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The real ``wsanalyze conversation ID --json`` for a few conversations."""
    disagreements = []
    walls = []
    for cid in conversation_ids:
        cmd = [*wsanalyze_cli(), "conversation", cid, "--traces", str(trace_dir), "--json"]
        proc, wall, _ = _timed(cmd, analyzer_env(workdir), workdir)
        walls.append(wall)
        if proc.returncode != 0:
            disagreements.append({"conversation_id": cid, "error": proc.stderr[-500:]})
            continue
        for m in json.loads(proc.stdout)["messages"]:
            b = bulk.get(m["message_id"], {})
            mine = (m["outcome"], m["hop"], m["cause"])
            if mine != (b.get("outcome"), b.get("hop"), b.get("cause")):
                disagreements.append(
                    {"conversation_id": cid, "message_id": m["message_id"], "cli": list(mine)}
                )
    return {"conversations": len(conversation_ids), "disagreements": disagreements, "walls": walls}


# --- scoring ----------------------------------------------------------------------------
def score(
    records: list[lc.ClientRecord], bulk: dict[str, dict[str, Any]], cli_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The client's truth against the analyzer's verdicts, message by message."""
    tp = fn = fp = tn = 0
    missing: list[str] = []
    misses: list[dict[str, Any]] = []  # truth lost, verdict not lost
    false_alarms: list[dict[str, Any]] = []  # truth received, verdict lost
    outcomes: Counter[str] = Counter()
    by_fault: dict[str, Counter[str]] = {}
    unplanted_lost: Counter[str] = Counter()
    in_flight = unknown = violations = 0
    unplanted: list[dict[str, Any]] = []  # healthy messages lost (or judged lost), first 100
    sent_ids: set[str] = set()
    per_conversation_truth: dict[str, tuple[int, int]] = {}  # cid -> (sent, lost)
    for record in records:
        lost_here = 0
        for mid in record.sent:
            sent_ids.add(mid)
            received = record.fully_received(mid)
            lost_here += not received
            verdict = bulk.get(mid)
            fault = record.planted.get(mid)
            if verdict is None:
                missing.append(mid)
                fn += not received
                continue
            outcome = verdict["outcome"]
            outcomes[outcome] += 1
            in_flight += outcome == "in_flight"
            unknown += verdict["cause"] == "unknown"
            violations += bool(verdict["violations"])
            key = f"{outcome}/{verdict['cause']}"
            by_fault.setdefault(fault or "none", Counter())[key] += 1
            if fault is None and outcome == "lost":
                unplanted_lost[verdict["cause"]] += 1
            detail = {
                "message_id": mid,
                "conversation_id": record.conversation_id,
                "planted": fault,
                "verdict": [outcome, verdict["hop"], verdict["cause"], verdict["rule"]],
                "client": {
                    "ack": mid in record.acks,
                    "chunks": sorted(record.chunks.get(mid, ())),
                    "done": record.done.get(mid, "-"),
                    "gave_up": mid in record.gave_up,
                    "closed_by": record.closed_by,
                    "close_code": record.close_code,
                },
            }
            if fault is None and (outcome == "lost" or not received) and len(unplanted) < 100:
                unplanted.append(detail)
            if not received and outcome == "lost":
                tp += 1
            elif not received:
                fn += 1
                misses.append(detail)
            elif outcome == "lost":
                fp += 1
                false_alarms.append(detail)
            else:
                tn += 1
        per_conversation_truth[record.conversation_id] = (len(record.sent), lost_here)
    ours = {r.conversation_id for r in records}
    extra = [mid for mid, v in bulk.items() if v["conversation_id"] in ours and mid not in sent_ids]
    cli_mismatch = []
    cli_seen = set()
    by_conversation = {row["conversation_id"]: row for row in cli_rows}
    for row in cli_rows:
        cid = row["conversation_id"]
        if cid not in per_conversation_truth:
            continue
        cli_seen.add(cid)
        sent, lost = per_conversation_truth[cid]
        if (row["messages"], row["lost"]) != (sent, lost):
            cli_mismatch.append(
                {
                    "conversation_id": cid,
                    "cli": [row["messages"], row["lost"]],
                    "truth": [sent, lost],
                }
            )
    refused = [r for r in records if not r.connected]
    refused_verdicts = Counter(
        f"{by_conversation[r.conversation_id]['verdict']['outcome']}/"
        f"{by_conversation[r.conversation_id]['verdict']['cause']}"
        if r.conversation_id in by_conversation
        else "unknown to the analyzer"
        for r in refused
    )
    cli_missing = [
        cid for cid, (sent, _) in per_conversation_truth.items() if sent and cid not in cli_seen
    ]
    truth_lost = tp + fn
    return {
        "sent": len(sent_ids),
        "truth_lost": truth_lost,
        "truth_received": fp + tn,
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tn": tn,
        "recall": tp / truth_lost if truth_lost else 1.0,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "missing": missing,
        "extra": extra,
        "in_flight": in_flight,
        "unknown_cause": unknown,
        "invariant_violations": violations,
        "outcomes": dict(outcomes),
        "by_planted_fault": {k: dict(v) for k, v in sorted(by_fault.items())},
        "unplanted_lost": dict(unplanted_lost),
        "unplanted_lost_details": unplanted,
        "misses": misses,
        "false_alarms": false_alarms,
        "cli_conversation_mismatches": cli_mismatch,
        # a client whose handshake failed sent nothing: its conversation must not be healthy
        "refused_handshakes": len(refused),
        "refused_handshake_verdicts": dict(refused_verdicts),
        "cli_missing_conversations": cli_missing,
    }


def client_stats(load: LoadResult) -> dict[str, Any]:
    latencies = [
        r.done_at[mid] - r.sent_at[mid]
        for r in load.records
        for mid in r.sent
        if mid in r.done_at and mid not in r.planted
    ]
    sent = sum(len(r.sent) for r in load.records)
    received = sum(r.fully_received(mid) for r in load.records for mid in r.sent)
    latencies.sort()
    last = max((t for r in load.records for t in r.done_at.values()), default=None)
    busy = (last - load.started) if last is not None else load.wall_s

    def pct(p: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)
            if latencies
            else None
        )

    edges = sorted(
        [(r.opened_at, 1) for r in load.records if r.opened_at is not None]
        + [(r.ended, -1) for r in load.records if r.opened_at is not None]
    )
    open_now = peak_open = 0
    for _, step in edges:
        open_now += step
        peak_open = max(peak_open, open_now)
    return {
        "connections": len(load.records),
        "peak_open_connections": peak_open,
        "open_errors": load.open_errors,
        "open_error_examples": [r.error for r in load.records if r.error][:3],
        "sent": sent,
        "fully_received": received,
        "gave_up": sum(len(r.gave_up) for r in load.records),
        "duplicate_chunks": sum(r.duplicate_chunks for r in load.records),
        "unexpected_frames": sum(r.unexpected for r in load.records),
        "close_codes": dict(Counter(str(r.close_code) for r in load.records)),
        "latency_s": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        "wall_s": round(load.wall_s, 2),
        "msgs_per_s": round(sent / load.wall_s, 1) if load.wall_s else None,
        # until the last answer arrived: a client that gave up on a lost healthy message
        # keeps the socket open answer_timeout longer, which says nothing about throughput
        "busy_s": round(busy, 2),
        "msgs_per_s_busy": round(sent / busy, 1) if busy else None,
    }


# --- report -----------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def print_report(results: dict[str, Any]) -> None:
    s, c, mem, logs = results["score"], results["clients"], results["rss"], results["exporter_down"]
    gap = results["worker_gap"]
    rows = [
        ("connections x messages", f"{results['connections']} x {results['messages']}"),
        ("messages sent / fully received", f"{s['sent']} / {s['truth_received']}"),
        ("really lost (client truth)", str(s["truth_lost"])),
        ("planted faults", ", ".join(f"{k} {v}" for k, v in results["planted"].items()) or "none"),
        ("lost: recall", f"{_pct(s['recall'])} ({s['tp']}/{s['truth_lost']})"),
        ("lost: precision", f"{_pct(s['precision'])} ({s['tp']}/{s['tp'] + s['fp']})"),
        ("sent, unknown to the analyzer", str(len(s["missing"]))),
        ("analyzer messages never sent", str(len(s["extra"]))),
        ("in_flight / cause unknown", f"{s['in_flight']} / {s['unknown_cause']}"),
        ("invariant violations", str(s["invariant_violations"])),
        (
            "refused handshakes → analyzer",
            f"{s['refused_handshakes']} → {s['refused_handshake_verdicts'] or '-'}",
        ),
        ("peak open connections", str(c["peak_open_connections"])),
        ("CLI conversations: count mismatches", str(len(s["cli_conversation_mismatches"]))),
        (
            "front door / CLI conversation disagreements",
            f"{len(results['front_door']['disagreements'])} of "
            f"{results['front_door']['messages']} msgs / "
            f"{len(results['cli_conversation']['disagreements'])}",
        ),
        ("wall time (load)", f"{c['wall_s']:.1f} s (until the last answer: {c['busy_s']:.1f} s)"),
        ("messages/s", f"{c['msgs_per_s']} ({c['msgs_per_s_busy']} until the last answer)"),
        (
            "latency healthy p50 / p95 / max",
            f"{c['latency_s']['p50']} / {c['latency_s']['p95']} / {c['latency_s']['max']} s",
        ),
        (
            "worker gap",
            f"stopped {gap.get('stopped_at')} s → ready {gap.get('ready_at')} s"
            if gap.get("planned")
            else "off",
        ),
        ("peak RSS Daphne", f"{mem.get('web', {}).get('peak_rss_mib')} MiB"),
        (
            "CPU s: Daphne / worker / clients",
            f"{mem.get('web', {}).get('cpu_s')} / {mem.get('worker', {}).get('cpu_s')} / "
            f"{mem['clients']['cpu_s']}",
        ),
        ("load average before / after", f"{results['load_before']} / {results['load_after']}"),
        (
            "peak RSS worker (main + children)",
            f"{mem.get('worker', {}).get('peak_rss_mib')} MiB, PSS "
            f"{mem.get('worker', {}).get('peak_pss_mib')} MiB "
            f"({mem.get('worker', {}).get('processes_seen')} processes over the run)",
        ),
        (
            "exporter-down lines",
            f"{logs['total']} (web {logs['web']}, worker {logs['worker']}); "
            f"max per process {logs['max_per_process']}",
        ),
        ("SDK 'Queue full, dropping Span.' lines", str(logs["sdk_queue_full_lines"])),
        (
            "analysis",
            f"CLI conversations {results['analyzer']['cli_seconds']:.1f} s "
            f"({results['analyzer']['cli_rss_mib']} MiB); bulk {results['analyzer']['bulk_seconds']:.1f} s "
            f"over {results['analyzer']['events']} events",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\nverdicts by planted fault:")
    for fault, outcomes in s["by_planted_fault"].items():
        print(f"  {fault:<20} {outcomes}")
    for name in ("misses", "false_alarms"):
        for item in s[name][:10]:
            print(f"{name[:-2] if name == 'misses' else 'false alarm'}: {json.dumps(item)}")


# --- main -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--messages", type=int, default=5, help="messages per connection")
    parser.add_argument("--quick", action="store_true", help="20 connections x 3 messages")
    parser.add_argument(
        "--fault-every", type=int, default=5, help="one planted fault per N connections (0: none)"
    )
    parser.add_argument(
        "--worker-gap", type=float, default=5.0, help="seconds the worker is away (0: never)"
    )
    parser.add_argument(
        "--gap-at", type=float, default=0.3, help="fraction of messages sent before the gap"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="prefork children")
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="CHAT_CHUNK_DELAY")
    parser.add_argument(
        "--long-chunks", type=int, default=100, help="CHAT_LONG_CHUNKS (client_disconnected)"
    )
    parser.add_argument(
        "--capacity", type=int, default=100, help="CHAT_CHANNEL_CAPACITY (the app's default)"
    )
    parser.add_argument(
        "--otlp",
        choices=("dead", "off"),
        default="dead",
        help="dead: OTLP exporter on, at a closed port; off: the file exporter only",
    )
    parser.add_argument(
        "--wstrace",
        choices=("on", "off"),
        default="on",
        help="off: a control run, client truth only",
    )
    parser.add_argument(
        "--ramp", type=float, help="seconds over which connections open (default N/50)"
    )
    parser.add_argument("--answer-timeout", type=float, default=120.0)
    parser.add_argument(
        "--sample", type=int, default=20, help="healthy conversations checked via the front door"
    )
    parser.add_argument(
        "--cli-checks",
        type=int,
        default=5,
        help="conversations checked via `wsanalyze conversation`",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="work directory to keep (traces, logs)")
    parser.add_argument(
        "--json", type=Path, help="results file (default benchmarks/results/load_proof_CxM.json)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.messages = 20, 3

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections * 2 + 256  # a client socket each, plus Daphne's side, plus slack
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        print(f"ulimit -n is {soft}, {need} needed for {args.connections} sockets", file=sys.stderr)
        return 2

    run_id = uuid.uuid4().hex[:6]
    plans = lc.make_plans(run_id, args.connections, args.messages, args.fault_every, args.seed)
    planted = Counter(f for p in plans for _, _, f in p.messages if f)
    # a run of its own under --keep: logs are appended to, and outage lines are counted
    workdir = (
        args.keep / f"run-{run_id}"
        if args.keep
        else Path(tempfile.mkdtemp(prefix="wstrace-loadproof-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    dead_port = free_port()  # nothing listens there: connection refused for the whole run
    env = {
        "WSTRACE_EXPORTERS": "file,otlp" if args.otlp == "dead" else "file",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{dead_port}",
        "CHAT_CHUNK_DELAY": str(args.chunk_delay),
        "CHAT_LONG_CHUNKS": str(args.long_chunks),
        "CHAT_CHANNEL_CAPACITY": str(args.capacity),
        "CHAT_RATE_LIMIT": "1000000",  # the load is not a flood; the limiter is not under test
    }
    pacing = lc.Pacing(answer_timeout=args.answer_timeout)
    print(
        f"run {run_id}: {args.connections} connections x {args.messages} messages, planted "
        f"{dict(planted)}, worker gap {args.worker_gap}s, OTLP -> {HOST}:{dead_port} (closed), "
        f"ulimit -n {soft}, workdir {workdir}",
        flush=True,
    )
    results: dict[str, Any] = {
        "run_id": run_id,
        "connections": args.connections,
        "messages": args.messages,
        "settings": {k: v for k, v in vars(args).items() if k not in ("keep", "json")},
        "planted": dict(planted),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": _load_average(),
        "ulimit_n": soft,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with RedisServer() as redis_server:
        stack = Stack(
            workdir,
            redis_server.url_for(1),
            env=env,
            concurrency=args.concurrency,
            wstrace_enabled=args.wstrace == "on",
            startup_timeout=90.0,
            stop_timeout=30.0,
        )
        stack.start()
        client_cpu = resource.getrusage(resource.RUSAGE_SELF)
        sampler = RssSampler(stack)
        sampler.start()
        try:
            load = asyncio.run(_load(stack, plans, pacing, args))
        finally:
            try:
                sampler.stop()
            finally:
                stopping = time.monotonic()
                stack.stop()  # SIGTERM: every process flushes its spans before the analysis
                results["stack_stop_s"] = round(time.monotonic() - stopping, 2)
        results["load_after"] = _load_average()
        results["rss"] = sampler.summary()
        used = resource.getrusage(resource.RUSAGE_SELF)
        results["rss"]["clients"] = {
            "cpu_s": round(
                used.ru_utime + used.ru_stime - client_cpu.ru_utime - client_cpu.ru_stime, 1
            ),
            "max_rss_mib": round(used.ru_maxrss / 1024, 1),
        }
        results["worker_gap"] = asdict(load.gap)
        results["clients"] = client_stats(load)
        results["exporter_down"] = outage_lines(stack, load.gap)
    print(
        f"load over: {results['clients']['sent']} sent, {results['clients']['fully_received']} "
        f"fully received in {load.wall_s:.1f} s",
        flush=True,
    )
    suffix = "_off" if args.wstrace == "off" else ("_file_only" if args.otlp == "off" else "")
    out = args.json or RESULTS / f"load_proof_{args.connections}x{args.messages}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.wstrace == "off":
        results["unplanted_not_received"] = [
            {
                "message_id": mid,
                "conversation_id": r.conversation_id,
                "chunks": sorted(r.chunks.get(mid, ())),
                "done": r.done.get(mid, "-"),
            }
            for r in load.records
            for mid in r.sent
            if mid not in r.planted and not r.fully_received(mid)
        ]
        shown = {k: results[k] for k in ("clients", "rss", "unplanted_not_received")}
        print(json.dumps(shown, indent=1))
        out.write_text(json.dumps(results, indent=1, default=str))
        return 0

    trace_dir = stack.trace_dir
    cli = cli_conversations(trace_dir, workdir)
    bulk, meta = bulk_message_verdicts(trace_dir)
    results["analyzer"] = {
        "cli_seconds": cli["seconds"],
        "cli_rss_mib": round(cli["rss"] / 2**20) if cli["rss"] else None,
        "bulk_seconds": meta["seconds"],
        "events": meta["events"],
        "message_rows": meta["rows"],
        "duplicate_message_rows": meta["duplicate_message_rows"],
        "problems": meta["problems"],
        "trace_bytes": sum(p.stat().st_size for p in trace_dir.rglob("*") if p.is_file()),
    }
    s = score(load.records, bulk, cli["rows"])
    results["score"] = s
    flagged = {d["conversation_id"] for d in s["misses"] + s["false_alarms"]}
    flagged |= {d["conversation_id"] for d in s["cli_conversation_mismatches"]}
    faulty = [r.conversation_id for r in load.records if r.planted and r.sent]
    healthy = [r.conversation_id for r in load.records if not r.planted and r.sent]
    rng = random.Random(args.seed)
    sample = rng.sample(healthy, min(args.sample, len(healthy)))
    checked = sorted(set(faulty) | flagged | set(sample))
    results["front_door"] = front_door_check(trace_dir, checked, bulk)
    by_kind: dict[str, str] = {}
    for r in load.records:
        for fault in r.planted.values():
            by_kind.setdefault(fault, r.conversation_id)
    cli_ids = (sorted(flagged) + list(by_kind.values()))[: args.cli_checks]
    results["cli_conversation"] = cli_conversation_check(trace_dir, workdir, cli_ids, bulk)
    print_report(results)

    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults: {out}")
    if args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = (
        s["recall"] == 1.0
        and s["precision"] == 1.0
        and not s["missing"]
        and not results["front_door"]["disagreements"]
        and not results["cli_conversation"]["disagreements"]
        and not s["cli_conversation_mismatches"]
        and all(k.startswith("rejected/") for k in s["refused_handshake_verdicts"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the stack on kill too
    raise SystemExit(main())
