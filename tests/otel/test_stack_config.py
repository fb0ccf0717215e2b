"""docker-compose.otel.yml and otel/**: parse, and cross-reference every name and port.

Nothing here runs a container (no images can be pulled where the tests run): the
files are checked against the documented formats of Compose, the OpenTelemetry
Collector, Tempo 2.x, Prometheus and Grafana provisioning, and against each other.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml
from wstrace import conventions as C

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.otel.yml"
COLLECTOR = ROOT / "otel/collector/config.yaml"
TEMPO = ROOT / "otel/tempo/tempo.yaml"
PROMETHEUS = ROOT / "otel/prometheus/prometheus.yml"
DATASOURCES = ROOT / "otel/grafana/provisioning/datasources/datasources.yaml"
PROVIDERS = ROOT / "otel/grafana/provisioning/dashboards/dashboards.yaml"


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def collector() -> dict:
    return load(COLLECTOR)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source for a service's short-syntax volumes."""
    out = {}
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        source, target = parts[0], parts[1]
        out[target] = source
    return out


def host_file(service: dict, container_path: str) -> Path:
    """The repository file a container path is bind-mounted from (file or inside a dir)."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        target = PurePosixPath(target)
        if path == target or target in path.parents:
            assert source.startswith("./"), f"{container_path} is not bind-mounted from the repo"
            return ROOT / source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted")


def flag(command: list[str], name: str) -> str:
    for arg in command:
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {command}")


def container_ports(service: dict) -> dict[int, int]:
    """Container port -> host port of a service's published ports."""
    out = {}
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")[-2:]
        out[int(container.split("/")[0])] = int(host)
    return out


# --- compose ------------------------------------------------------------------------------


def test_compose_has_the_stack(services):
    assert {"otel-collector", "jaeger", "tempo", "prometheus", "grafana"} <= set(services)


def test_every_image_is_pinned_to_the_right_major(services):
    images = {name: svc["image"] for name, svc in services.items()}
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"
    assert images["otel-collector"].startswith("otel/opentelemetry-collector-contrib:")
    collector_minor = int(images["otel-collector"].rsplit(":", 1)[1].split(".")[1])
    assert collector_minor >= 144  # otlp_grpc / otlp_http exporter names (config uses them)
    assert images["jaeger"].startswith("jaegertracing/jaeger:2.")
    assert images["tempo"].startswith("grafana/tempo:2.")  # Tempo 3 drops this layout
    assert images["tempo-init"] == images["tempo"]
    assert images["prometheus"].startswith("prom/prometheus:v3.")
    assert images["grafana"].startswith("grafana/grafana:")


def test_bind_mounts_exist_and_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for target, source in mounts(svc).items():
            assert target.startswith("/"), (name, target)
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_commands_read_the_mounted_config_files(services):
    collector_cfg = flag(services["otel-collector"]["command"], "--config")
    assert host_file(services["otel-collector"], collector_cfg) == COLLECTOR
    tempo_cfg = flag(services["tempo"]["command"], "-config.file")
    assert host_file(services["tempo"], tempo_cfg) == TEMPO
    prom_cfg = flag(services["prometheus"]["command"], "--config.file")
    assert host_file(services["prometheus"], prom_cfg) == PROMETHEUS
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    grafana = services["grafana"]
    assert host_file(grafana, "/etc/grafana/provisioning/datasources/x.yaml").parent == (
        DATASOURCES.parent
    )
    assert host_file(grafana, "/etc/grafana/provisioning/dashboards/x.yaml").parent == (
        PROVIDERS.parent
    )


def test_published_ports(services):
    assert container_ports(services["otel-collector"]) == {
        4317: 4317,
        4318: 4318,
        8889: 8889,
        13133: 13133,
    }
    assert container_ports(services["jaeger"]) == {16686: 16686}
    assert container_ports(services["tempo"]) == {3200: 3200}
    assert container_ports(services["grafana"]) == {3000: 3000}
    assert container_ports(services["prometheus"]) == {9090: 9090}
    published = [p for svc in services.values() for p in container_ports(svc).values()]
    assert len(published) == len(set(published)), "a host port is published twice"


def test_depends_on_names_services(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps:  # a list, or a mapping of service -> condition
            assert dep in services, f"{name} depends on unknown {dep}"
    assert services["tempo"]["depends_on"]["tempo-init"] == {
        "condition": "service_completed_successfully"
    }
    init = services["tempo-init"]
    assert init["user"] == "root" and "/var/tempo" in init["entrypoint"]
    assert mounts(init)["/var/tempo"] == mounts(services["tempo"])["/var/tempo"]


def test_grafana_home_dashboard_is_a_mounted_file(services):
    env = dict(e.split("=", 1) for e in services["grafana"]["environment"])
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_file(services["grafana"], home).is_file()
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"


# --- collector ------------------------------------------------------------------------------

SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")
# Component types of otelcol-contrib used here (type[/name] ids).
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch"},
    "exporters": {"otlp_grpc", "otlp_http", "prometheus", "debug"},
    "connectors": {"spanmetrics", "servicegraph"},
    "extensions": {"health_check"},
}
SIGNALS = {"traces", "metrics", "logs"}


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_collector_components_are_known_and_ids_well_formed(collector):
    for section in SECTIONS:
        for cid in collector.get(section) or {}:
            assert re.fullmatch(r"[a-z][a-z0-9_]*(/[\w.-]+)?", cid), cid
            assert component_type(cid) in KNOWN_TYPES[section], f"{section}: {cid}"


def test_collector_pipelines_reference_defined_components(collector):
    service = collector["service"]
    for ext in service.get("extensions", []):
        assert ext in collector["extensions"]
    pipelines = service["pipelines"]
    for name, pipeline in pipelines.items():
        assert component_type(name) in SIGNALS, name
        assert pipeline["receivers"] and pipeline["exporters"], name
        for rid in pipeline["receivers"]:
            assert rid in (collector.get("receivers") or {}) or rid in collector["connectors"]
        for pid in pipeline.get("processors", []):
            assert pid in collector["processors"], pid
        for eid in pipeline["exporters"]:
            assert eid in collector["exporters"] or eid in collector["connectors"], eid
    used = {
        cid
        for pipeline in pipelines.values()
        for key in ("receivers", "processors", "exporters")
        for cid in pipeline.get(key, [])
    }
    for section in ("receivers", "processors", "exporters", "connectors"):
        for cid in collector.get(section) or {}:
            assert cid in used, f"{section}/{cid} is defined but in no pipeline"


def test_connectors_join_traces_to_metrics(collector):
    pipelines = collector["service"]["pipelines"]
    for connector in collector["connectors"]:
        as_exporter = {
            component_type(n) for n, p in pipelines.items() if connector in p["exporters"]
        }
        as_receiver = {
            component_type(n) for n, p in pipelines.items() if connector in p["receivers"]
        }
        assert as_exporter == {"traces"}, connector
        assert as_receiver == {"metrics"}, connector
    (metrics,) = [p for n, p in pipelines.items() if component_type(n) == "metrics"]
    assert "prometheus" in metrics["exporters"]


def test_traces_go_to_jaeger_and_tempo_over_otlp(collector, services):
    traces = collector["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    targets = {}
    for eid in traces["exporters"]:
        if component_type(eid) == "otlp_grpc":
            cfg = collector["exporters"][eid]
            host, port = cfg["endpoint"].split(":")
            assert cfg["tls"]["insecure"] is True
            targets[host] = int(port)
    assert targets == {"jaeger": 4317, "tempo": 4317}
    assert set(targets) <= set(services)
    tempo = load(TEMPO)
    grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc == "0.0.0.0:4317"
    assert services["jaeger"]["environment"] == ["JAEGER_LISTEN_HOST=0.0.0.0"]


def test_collector_listens_on_all_interfaces(collector):
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert collector["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:8889"
    assert collector["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def test_spanmetrics_dimensions_are_the_wstrace_vocabulary(collector):
    spanmetrics = collector["connectors"]["spanmetrics"]
    dims = [d["name"] for d in spanmetrics["dimensions"]]
    assert {C.HOP, C.CAUSE, C.EVENT} <= set(dims)
    assert set(dims) <= set(C.ALL_ATTRIBUTES)
    assert spanmetrics["namespace"] == "traces.span.metrics"
    assert spanmetrics["histogram"]["unit"] == "ms"
    buckets = spanmetrics["histogram"]["explicit"]["buckets"]
    assert all(GO_DURATION.match(b) for b in buckets)
    assert spanmetrics["exemplars"]["enabled"] is True
    assert GO_DURATION.match(spanmetrics["metrics_flush_interval"])
    servicegraph = collector["connectors"]["servicegraph"]
    assert all(GO_DURATION.match(b) for b in servicegraph["latency_histogram_buckets"])
    assert GO_DURATION.match(servicegraph["store"]["ttl"])


def test_no_unexpanded_environment_references(collector):
    assert "${" not in COLLECTOR.read_text()


# --- tempo, prometheus ------------------------------------------------------------------------

TEMPO_TOP_LEVEL = {
    "target",
    "http_api_prefix",
    "server",
    "internal_server",
    "distributor",
    "ingester",
    "metrics_generator",
    "querier",
    "query_frontend",
    "compactor",
    "storage",
    "overrides",
    "memberlist",
    "usage_report",
    "cache",
    "multitenancy_enabled",
    "stream_over_http_enabled",
}


def test_tempo_config_is_a_single_binary_2x_layout(services):
    tempo = load(TEMPO)
    assert set(tempo) <= TEMPO_TOP_LEVEL
    assert tempo["server"]["http_listen_port"] == 3200 in container_ports(services["tempo"])
    assert tempo["storage"]["trace"]["backend"] == "local"
    volume_root = PurePosixPath("/var/tempo")
    assert "/var/tempo" in mounts(services["tempo"])
    for key in ("wal", "local"):
        assert volume_root in PurePosixPath(tempo["storage"]["trace"][key]["path"]).parents
    assert "max_block_duration" in tempo["ingester"]  # the 2.x ingester (gone in 3.0)
    http = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http == "0.0.0.0:4318"


def test_prometheus_scrapes_the_collector_span_metrics(services, collector):
    prom = load(PROMETHEUS)
    targets = [
        t
        for job in prom["scrape_configs"]
        for static in job["static_configs"]
        for t in static["targets"]
    ]
    exporter_port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert f"otel-collector:{exporter_port}" in targets
    for target in targets:
        assert target.split(":")[0] in services
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "otel-collector"]
    # dashboards query ws_hop, not "ws.hop": Prometheus 3 must not negotiate UTF-8 names
    assert job["metric_name_validation_scheme"] == "legacy"
    assert job["metric_name_escaping_scheme"] == "underscores"


# --- grafana provisioning ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasources() -> list[dict]:
    doc = load(DATASOURCES)
    assert doc["apiVersion"] == 1
    return doc["datasources"]


def test_datasources_have_the_contract_uids(datasources):
    by_uid = {d["uid"]: d for d in datasources}
    assert len(by_uid) == len(datasources)
    assert {uid: d["type"] for uid, d in by_uid.items()} == {
        "prometheus": "prometheus",
        "tempo": "tempo",
        "jaeger": "jaeger",
    }
    assert [d["uid"] for d in datasources if d.get("isDefault")] == ["prometheus"]
    for d in datasources:
        assert d["name"] and d["access"] == "proxy"


def test_datasource_urls_point_at_compose_services(datasources, services):
    for d in datasources:
        match = re.fullmatch(r"http://([\w-]+):(\d+)", d["url"])
        assert match, d["url"]
        host, port = match.group(1), int(match.group(2))
        assert host in services
        assert port in container_ports(services[host]), f"{d['uid']}: {host}:{port}"


def _uid_refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "datasourceUid"]
        return found + [u for v in node.values() for u in _uid_refs(v)]
    if isinstance(node, list):
        return [u for v in node for u in _uid_refs(v)]
    return []


def test_links_between_datasources_use_provisioned_uids(datasources):
    uids = {d["uid"] for d in datasources}
    refs = _uid_refs(datasources)
    assert refs and set(refs) <= uids
    tempo = next(d for d in datasources if d["uid"] == "tempo")
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"


def _strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_provisioning_escapes_dollar_signs():
    """Provisioning files expand $VAR / ${VAR}: a literal `$` must be written `$$`."""
    for path in (DATASOURCES, PROVIDERS):
        for value in _strings(load(path)):
            assert "$" not in value.replace("$$", ""), f"{path}: unescaped $ in {value!r}"
    queries = [
        q["query"]
        for d in load(DATASOURCES)["datasources"]
        for q in d.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", [])
    ]
    assert queries and all("$$__tags" in q for q in queries)


def test_dashboard_provider_loads_the_mounted_dashboards(services):
    doc = load(PROVIDERS)
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["name"]
    directory = host_file(services["grafana"], provider["options"]["path"])
    assert directory == ROOT / "dashboards"
    assert list(directory.glob("*.json"))


def test_compose_file_matches_the_compose_spec_schema():
    """The official compose-spec JSON schema (vendored by check-jsonschema, a dev dependency)."""
    import subprocess
    import sys

    import check_jsonschema  # noqa: F401 - missing is a broken dev install, not a skip

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
