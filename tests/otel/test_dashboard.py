"""dashboards/*.json: Grafana's dashboard JSON model, datasource refs, queries that fit the stack.

Checked against the documented dashboard model (uid, title, schemaVersion, panels
with gridPos on a 24-column grid, templating.list, time) and against what the
stack provides: provisioned datasource uids and types, the Prometheus names the
collector's spanmetrics connector produces, the wstrace attribute vocabulary in
TraceQL. No Grafana runs here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from wstrace import conventions as C

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCES = ROOT / "otel/grafana/provisioning/datasources/datasources.yaml"
COLLECTOR = ROOT / "otel/collector/config.yaml"
PANEL_TYPES = {
    "timeseries",
    "table",
    "bargauge",
    "barchart",
    "stat",
    "piechart",
    "text",
    "traces",
    "nodeGraph",
    "row",
    "logs",
    "histogram",
}
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__all", "__from", "__to"}


def provisioned() -> dict[str, str]:
    doc = yaml.safe_load(DATASOURCES.read_text())
    return {d["uid"]: d["type"] for d in doc["datasources"]}


def spanmetrics_labels() -> set[str]:
    collector = yaml.safe_load(COLLECTOR.read_text())
    dims = [d["name"] for d in collector["connectors"]["spanmetrics"]["dimensions"]]
    # Prometheus label names: dots become underscores; the connector's default dimensions
    return {d.replace(".", "_") for d in dims} | {
        "service_name",
        "span_name",
        "span_kind",
        "status_code",
        "le",
        "job",
        "instance",
    }


def spanmetrics_names() -> set[str]:
    collector = yaml.safe_load(COLLECTOR.read_text())
    spanmetrics = collector["connectors"]["spanmetrics"]
    prefix = spanmetrics["namespace"].replace(".", "_")
    unit = {"ms": "milliseconds", "s": "seconds"}[spanmetrics["histogram"]["unit"]]
    return {
        f"{prefix}_calls_total",
        *(f"{prefix}_duration_{unit}_{s}" for s in ("bucket", "sum", "count")),
    }


@pytest.fixture(scope="module", params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request) -> dict:
    return json.loads(request.param.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def targets(dashboard: dict) -> list[tuple[dict, dict]]:
    return [(p, t) for p in panels(dashboard) for t in p.get("targets", [])]


def test_there_is_a_dashboard():
    assert [p.name for p in DASHBOARDS] == ["websocket-conversations.json"]


def test_required_top_level_fields(dashboard):
    assert dashboard["title"] == "WebSocket conversations"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard.get("id") is None  # provisioned: Grafana assigns the id
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert isinstance(dashboard["panels"], list) and dashboard["panels"]
    assert isinstance(dashboard["templating"]["list"], list)
    assert {"from", "to"} <= set(dashboard["time"])
    assert "wstrace" in dashboard["tags"]


def test_panels_are_well_formed_and_do_not_overlap(dashboard):
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h"))
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs))


def _datasource_refs(node) -> list[dict]:
    if isinstance(node, dict):
        found = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return found + [r for v in node.values() for r in _datasource_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _datasource_refs(v)]
    return []


def test_every_datasource_ref_is_a_provisioned_uid(dashboard):
    known = provisioned()
    refs = _datasource_refs(dashboard)
    assert refs
    for ref in refs:
        if ref.get("type") == "grafana":  # the built-in annotations source
            continue
        assert ref["uid"] in known, ref
        assert ref["type"] == known[ref["uid"]], ref
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert isinstance(panel.get("datasource"), dict), panel["title"]
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == panel["datasource"]["uid"]
    # string datasource names (the pre-uid form) would break when names change
    assert all(not isinstance(p.get("datasource"), str) for p in panels(dashboard))


def _variables(text: str) -> set[str]:
    return {
        m.group(1) or m.group(2)
        for m in re.finditer(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", text)
        if (m.group(1) or m.group(2))
    }


def test_template_variables_are_defined_and_used(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"service", "conversation"} <= set(variables)
    service = variables["service"]
    assert service["type"] == "query" and service["datasource"]["uid"] == "prometheus"
    definition = service["definition"]
    assert definition == f"label_values({sorted(spanmetrics_names())[0]}, service_name)"
    assert service["includeAll"] and service["allValue"] == ".*"
    assert variables["conversation"]["type"] == "textbox"
    used: set[str] = set()
    for _, target in targets(dashboard):
        used |= _variables(target.get("expr") or target.get("query") or "")
    for link in dashboard.get("links", []):
        used |= _variables(link.get("url", ""))
    assert used - BUILTIN_VARIABLES <= set(variables)
    assert {"service", "conversation"} <= used


def _balanced(text: str) -> bool:
    stack = []
    pairs = {")": "(", "]": "[", "}": "{"}
    in_string = False
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            in_string = not in_string
        elif not in_string and ch in "([{":
            stack.append(ch)
        elif not in_string and ch in ")]}" and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not in_string


def test_prometheus_queries_use_the_spanmetrics_names_and_labels(dashboard):
    names, labels = spanmetrics_names(), spanmetrics_labels()
    exprs = [t["expr"] for _, t in targets(dashboard) if t["datasource"]["type"] == "prometheus"]
    assert exprs
    for expr in exprs:
        assert _balanced(expr), expr
        metrics = set(re.findall(r"\b(traces_[a-z_]+)\b", expr))
        assert metrics and metrics <= names, expr
        selectors = re.findall(r"\{([^}]*)\}", expr)
        by_clauses = re.findall(r"by \(([^)]*)\)", expr)
        used = {m.group(1) for s in selectors for m in re.finditer(r"(\w+)\s*[!=]~?", s)}
        used |= {label.strip() for clause in by_clauses for label in clause.split(",")}
        assert used <= labels, (expr, used - labels)
        for value in re.findall(r'span_name="([^"]+)"', expr):
            assert value in {C.SPAN_CONNECT, C.SPAN_DISCONNECT, C.SPAN_CLOSE}


def test_traceql_queries_use_the_wstrace_attributes(dashboard):
    queries = [t for _, t in targets(dashboard) if t["datasource"]["type"] == "tempo"]
    assert queries
    for target in queries:
        assert target["queryType"] == "traceql"
        query = target["query"]
        assert _balanced(query), query
        for attribute in re.findall(r"\bspan\.([\w.]+)", query):
            assert attribute in C.ALL_ATTRIBUTES, attribute
        for attribute in re.findall(r"\bresource\.([\w.]+)", query):
            assert attribute == "service.name"
        hops = re.findall(r'span\.ws\.hop = "(\w+)"', query)
        assert set(hops) <= set(C.HOPS)


def test_the_panels_the_brief_asks_for(dashboard):
    by_title = {p["title"]: p for p in panels(dashboard)}
    hop = by_title["Spans per hop"]["targets"][0]["expr"]
    assert "by (ws_hop)" in hop and "traces_span_metrics_calls_total" in hop
    causes = by_title["Errors by ws.cause"]["targets"]
    assert any("by (ws_cause)" in t["expr"] for t in causes)
    (empty,) = by_title["Publish with group_members = 0"]["targets"]
    assert empty["datasource"]["uid"] == "tempo"
    assert f'span.{C.HOP} = "{C.HOP_PUBLISH}"' in empty["query"]
    assert f"span.{C.MEMBERS} = 0" in empty["query"]
    closes = by_title["Close codes"]["targets"]
    assert all("ws_close_code" in t["expr"] for t in closes)
    latency = by_title["Latency receive → send (per hop)"]["targets"]
    assert all("histogram_quantile" in t["expr"] for t in latency)
    hops = re.search(r'ws_hop=~"([^"]+)"', latency[0]["expr"]).group(1).split("|")
    assert tuple(hops) == C.MESSAGE_HOPS
    conversation = by_title["Conversation spans"]["targets"][0]["query"]
    assert f'span.{C.CONVERSATION_ID} =~ "$conversation"' in conversation
