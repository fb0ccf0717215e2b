"""The embedded store: OTLP/JSON encoding, one file per process, rotation, failures that stay ours."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from wstrace.file_exporter import FileSpanExporter
from wstrace.otlp_json import encode_request

from .spans import read_spans

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
STORE_LOGGER = "wstrace.file_exporter"


def _finished_spans(build) -> list:
    """Run ``build(tracer)`` on a real SDK provider and return the finished ReadableSpans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("wstrace", "0.1.0"), provider)
    return list(memory.get_finished_spans())


def _one_span(tracer, _provider) -> None:
    with tracer.start_as_current_span("ws.receive", attributes={"ws.hop": "receive"}):
        pass


def _request(spans) -> dict:
    line = encode_request(spans)
    assert "\n" not in line
    return json.loads(line)


# --- OTLP/JSON encoding ------------------------------------------------------------------
def test_ids_are_lowercase_hex_and_a_child_names_its_parent():
    def build(tracer, _):
        with tracer.start_as_current_span("ws.connect"), tracer.start_as_current_span("ws.accept"):
            pass

    spans = _finished_spans(build)
    raw = {s["name"]: s for s in _request(spans)["resourceSpans"][0]["scopeSpans"][0]["spans"]}

    root, child = raw["ws.connect"], raw["ws.accept"]
    assert HEX32.match(root["traceId"]) and HEX16.match(root["spanId"])
    assert root["traceId"] == f"{spans[1].context.trace_id:032x}"
    assert "parentSpanId" not in root
    assert child["parentSpanId"] == root["spanId"]
    assert child["traceId"] == root["traceId"]


def test_int64_values_and_timestamps_are_decimal_strings_other_types_keep_their_type():
    def build(tracer, _):
        with tracer.start_as_current_span("ws.publish") as span:
            span.set_attributes(
                {
                    "ws.seq": 3,
                    "big": 2**62,
                    "ws.accepted": True,
                    "ratio": 0.25,
                    "ws.queues": ["celery", "agents"],
                    "ws.hop": "publish",
                }
            )

    [span] = _finished_spans(build)
    raw = _request([span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    values = {kv["key"]: kv["value"] for kv in raw["attributes"]}

    assert values["ws.seq"] == {"intValue": "3"}
    assert values["big"] == {"intValue": str(2**62)}
    assert values["ws.accepted"] == {"boolValue": True}
    assert values["ratio"] == {"doubleValue": 0.25}
    assert values["ws.queues"] == {
        "arrayValue": {"values": [{"stringValue": "celery"}, {"stringValue": "agents"}]}
    }
    assert values["ws.hop"] == {"stringValue": "publish"}
    assert raw["startTimeUnixNano"] == str(span.start_time)
    assert raw["endTimeUnixNano"] == str(span.end_time)


@pytest.mark.parametrize(
    ("kind", "otlp"),
    [
        (SpanKind.INTERNAL, 1),
        (SpanKind.SERVER, 2),
        (SpanKind.CLIENT, 3),
        (SpanKind.PRODUCER, 4),
        (SpanKind.CONSUMER, 5),
    ],
)
def test_span_kinds_are_the_otlp_enum_one_above_the_sdk(kind, otlp):
    [span] = _finished_spans(lambda tracer, _: tracer.start_span("s", kind=kind).end())

    assert _request([span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] == otlp


def test_status_events_and_links_are_encoded():
    def build(tracer, _):
        with tracer.start_as_current_span("ws.connect") as other:
            pass
        span = tracer.start_span("ws.publish", links=[Link(other.get_span_context(), {"why": "x"})])
        span.add_event("ws.channel_full", {"ws.over_capacity": 2})
        span.set_status(Status(StatusCode.ERROR, "ChannelFull: over capacity"))
        span.end()

    connect, publish = _finished_spans(build)
    raw = _request([publish])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]

    assert raw["status"] == {"code": 2, "message": "ChannelFull: over capacity"}
    [event] = raw["events"]
    assert event["name"] == "ws.channel_full"
    assert event["timeUnixNano"] == str(publish.events[0].timestamp)
    assert event["attributes"] == [{"key": "ws.over_capacity", "value": {"intValue": "2"}}]
    [link] = raw["links"]
    assert link["traceId"] == f"{connect.context.trace_id:032x}"
    assert link["spanId"] == f"{connect.context.span_id:016x}"
    assert link["attributes"] == [{"key": "why", "value": {"stringValue": "x"}}]


def test_unset_status_has_code_0_and_no_message_and_no_events_key():
    [span] = _finished_spans(_one_span)
    raw = _request([span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]

    assert raw["status"] == {"code": 0}
    assert "events" not in raw and "links" not in raw


def test_spans_are_grouped_by_resource_and_scope():
    def build(tracer, provider):
        tracer.start_span("ours").end()
        provider.get_tracer("opentelemetry.instrumentation.celery", "0.66b2").start_span(
            "run/task"
        ).end()
        tracer.start_span("ours too").end()

    request = _request(_finished_spans(build))

    [resource_spans] = request["resourceSpans"]
    resource = {kv["key"]: kv["value"] for kv in resource_spans["resource"]["attributes"]}
    assert resource["service.name"] == {"stringValue": "web"}
    scopes = {s["scope"]["name"]: s for s in resource_spans["scopeSpans"]}
    assert scopes["wstrace"]["scope"]["version"] == "0.1.0"
    assert [s["name"] for s in scopes["wstrace"]["spans"]] == ["ours", "ours too"]
    assert [s["name"] for s in scopes["opentelemetry.instrumentation.celery"]["spans"]] == [
        "run/task"
    ]


# --- the file store ---------------------------------------------------------------------
def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def test_one_file_per_process_one_line_per_export(tmp_path):
    exporter = FileSpanExporter(tmp_path, "web", 1 << 20)
    spans = _finished_spans(_one_span)

    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()

    [path] = _files(tmp_path)
    assert path == exporter.path
    assert re.fullmatch(rf"web-[\w-]+-{os.getpid()}-\d{{8}}T\d{{6}}\.0\.jsonl", path.name)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert [s.name for s in read_spans(tmp_path)] == ["ws.receive", "ws.receive"]


def test_the_service_name_is_made_safe_for_a_file_name(tmp_path):
    exporter = FileSpanExporter(tmp_path, "chat web/worker:1", 1 << 20)
    exporter.export(_finished_spans(_one_span))

    [path] = _files(tmp_path)
    assert path.name.startswith("chat_web_worker_1-")


def test_a_file_is_rotated_once_it_passes_file_max_bytes(tmp_path):
    spans = _finished_spans(_one_span)
    line_bytes = len(encode_request(spans)) + 1
    exporter = FileSpanExporter(tmp_path, "web", max_bytes=2 * line_bytes)

    for _ in range(5):
        assert exporter.export(spans) is SpanExportResult.SUCCESS

    files = _files(tmp_path)
    assert [p.name.rsplit(".", 2)[1] for p in files] == ["0", "1", "2"]
    assert [len(p.read_text().splitlines()) for p in files] == [2, 2, 1]
    assert all(p.stat().st_size <= 2 * line_bytes for p in files)
    assert len(read_spans(tmp_path)) == 5


def test_threads_exporting_at_once_never_interleave_lines(tmp_path):
    exporter = FileSpanExporter(tmp_path, "web", 1 << 30)
    spans = _finished_spans(lambda tracer, _: [tracer.start_span(f"s{i}").end() for i in range(20)])

    def hammer() -> None:
        for _ in range(25):
            exporter.export(spans)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(read_spans(tmp_path)) == 8 * 25 * 20  # every line parses


def test_a_forked_child_writes_its_own_file_through_a_batch_processor(tmp_path):
    provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
    provider.add_span_processor(
        BatchSpanProcessor(FileSpanExporter(tmp_path, "worker", 1 << 20), schedule_delay_millis=50)
    )
    tracer = provider.get_tracer("wstrace")
    tracer.start_span("before fork").end()
    provider.force_flush()

    pid = os.fork()
    if pid == 0:  # the child: what a Celery prefork child does
        status = 1
        try:
            tracer.start_span("in child").end()
            status = 0 if provider.force_flush(5000) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    tracer.start_span("parent after fork").end()
    provider.force_flush()
    provider.shutdown()

    assert os.waitstatus_to_exitcode(status) == 0
    by_pid: dict[str, set[str]] = {}
    for span in read_spans(tmp_path):
        by_pid.setdefault(Path(span.file).name.split("-")[-2], set()).add(span.name)
    assert by_pid == {
        str(os.getpid()): {"before fork", "parent after fork"},
        str(pid): {"in child"},
    }


def _store_errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == STORE_LOGGER]


def test_an_unwritable_dir_fails_the_export_logs_once_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory")
    exporter = FileSpanExporter(blocker / "traces", "web", 1 << 20)
    spans = _finished_spans(_one_span)
    caplog.set_level(logging.ERROR, logger=STORE_LOGGER)

    results = [exporter.export(spans) for _ in range(5)]

    assert results == [SpanExportResult.FAILURE] * 5
    [message] = _store_errors(caplog)
    assert str(blocker / "traces") in message and "the app is unaffected" in message


def test_the_store_resumes_once_the_dir_becomes_writable(tmp_path, caplog):
    target = tmp_path / "traces"
    target.write_text("a file where the directory should be")
    exporter = FileSpanExporter(target, "web", 1 << 20)
    spans = _finished_spans(_one_span)
    caplog.set_level(logging.ERROR, logger=STORE_LOGGER)
    assert exporter.export(spans) is SpanExportResult.FAILURE

    target.unlink()

    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert [s.name for s in read_spans(target)] == ["ws.receive"]


def fill(directory: Path) -> None:
    """Write a file into ``directory`` until the file system refuses (ENOSPC)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (needs root and mount)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        fill(mount)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_export_logs_once_and_never_raises(full_disk, caplog):
    exporter = FileSpanExporter(full_disk, "web", 1 << 20)
    spans = _finished_spans(_one_span)
    caplog.set_level(logging.ERROR, logger=STORE_LOGGER)

    results = [exporter.export(spans) for _ in range(5)]

    assert results == [SpanExportResult.FAILURE] * 5
    [message] = _store_errors(caplog)
    assert "No space left on device" in message


def _request_as_one_document(spans) -> str:
    """The request built as one nested dict and serialized once: the reference layout."""
    from wstrace import otlp_json

    groups: dict = {}
    for span in spans:
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "")
        entry = groups.setdefault(id(span.resource), (span.resource, {}))
        entry[1].setdefault(key, []).append(otlp_json.encode_span(span))
    return otlp_json._dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": otlp_json.encode_attributes(resource.attributes)},
                    "scopeSpans": [
                        {"scope": {"name": name, "version": version}, "spans": encoded}
                        for (name, version), encoded in scopes.items()
                    ],
                }
                for resource, scopes in groups.values()
            ]
        }
    )


def test_the_request_text_is_byte_for_byte_the_reference_serialization():
    """Spans are written from cached KeyValue texts; the bytes equal one dict serialized."""

    def build(tracer, provider):
        other = provider.get_tracer("django", "5.0")
        with tracer.start_as_current_span("ws.deliver", kind=SpanKind.CONSUMER) as parent:
            parent.set_attributes({"ws.seq": 2, "ws.hop": "deliver", "txt": 'q"uote ✓\\n'})
            for seq in range(3):  # repeated KeyValues come from the cache, new ints not
                sizes = {"ws.frame_bytes": 10 + seq, "access_token": seq}
                tracer.start_span("ws.send", attributes={"ws.seq": seq, **sizes}).end()
            span = other.start_span(
                "GET /x?token=abc",
                attributes={"ok": True, "one": 1, "ratio": 2.0, "list": ["a", "b"], "n": None},
                links=[Link(parent.get_span_context(), {"why": "retry"})],
            )
            span.add_event("ws.channel_full", {"ws.over_capacity": 1})
            span.set_status(Status(StatusCode.ERROR, "failed with access_token=xyz"))
            span.end()
            tracer.start_span("ws.publish", attributes={"cookie": "sessionid=1"}).end()

    spans = _finished_spans(build)
    for _ in range(2):  # the second pass reads every KeyValue and name from the caches
        assert encode_request(spans) == _request_as_one_document(spans)
    worker = TracerProvider(resource=Resource.create({"service.name": "worker"}))
    memory = InMemorySpanExporter()
    worker.add_span_processor(SimpleSpanProcessor(memory))
    worker.get_tracer("wstrace", "0.1.0").start_span("ws.task").end()
    mixed = [*spans[:2], *memory.get_finished_spans(), *spans[2:]]  # two resources, interleaved
    assert encode_request(mixed) == _request_as_one_document(mixed)
    assert len(json.loads(encode_request(mixed))["resourceSpans"]) == 2


def test_the_stdlib_json_fallback_writes_the_same_request(monkeypatch):
    def build(tracer, _):
        with tracer.start_as_current_span("ws.deliver", attributes={"ws.seq": 2, "txt": "héllo ✓"}):
            tracer.start_span("ws.send", attributes={"big": 2**63 - 1, "ok": True}).end()

    spans = _finished_spans(build)
    fast = encode_request(spans)
    monkeypatch.setattr("wstrace.otlp_json.orjson", None)

    assert json.loads(encode_request(spans)) == json.loads(fast)


def test_secret_attribute_keys_and_values_are_redacted_while_encoding():
    def build(tracer, _):
        tracer.start_span(
            "GET",
            attributes={
                "http.request.header.authorization": "Bearer abc.def",
                "http.url": "http://h/?access_token=xyz",
                "ws.layer_desc": "redis 127.0.0.1:6379/0 prefix=asgi",
            },
        ).end()

    [span] = _finished_spans(build)
    for _ in range(2):  # the second time through the clean-value cache
        raw = _request([span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        values = {kv["key"]: kv["value"]["stringValue"] for kv in raw["attributes"]}
        assert values == {
            "http.request.header.authorization": "[redacted]",
            "http.url": "http://h/?access_token=[redacted]",
            "ws.layer_desc": "redis 127.0.0.1:6379/0 prefix=asgi",
        }


def test_repeated_attribute_values_keep_their_types():
    def build(tracer, _):
        tracer.start_span("a", attributes={"flag": True, "n": 1}).end()
        tracer.start_span("b", attributes={"flag": 1, "n": True}).end()

    spans = _finished_spans(build)
    for _ in range(2):
        raw = _request(spans)["resourceSpans"][0]["scopeSpans"][0]["spans"]
        values = [{kv["key"]: kv["value"] for kv in s["attributes"]} for s in raw]
        assert values == [
            {"flag": {"boolValue": True}, "n": {"intValue": "1"}},
            {"flag": {"intValue": "1"}, "n": {"boolValue": True}},
        ]


def test_shared_encodings_never_give_a_bool_or_float_the_encoding_of_an_equal_int() -> None:
    # True == 1 and 2.0 == 2 as dict keys: the encoder's cache must not mix them up.
    def build(tracer, _provider) -> None:
        for value in (1, True, 2, 2.0, 1, 0, False, "1"):
            tracer.start_span("ws.send", attributes={"ws.x": value}).end()

    spans = _finished_spans(build)
    request = _request(spans)
    values = [
        span["attributes"][0]["value"]
        for scope in request["resourceSpans"][0]["scopeSpans"]
        for span in scope["spans"]
    ]
    assert values == [
        {"intValue": "1"},
        {"boolValue": True},
        {"intValue": "2"},
        {"doubleValue": 2.0},
        {"intValue": "1"},
        {"intValue": "0"},
        {"boolValue": False},
        {"stringValue": "1"},
    ]
