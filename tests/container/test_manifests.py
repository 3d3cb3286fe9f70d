"""The deployment files, checked offline: every Kubernetes object against the Kubernetes JSON schemas
(``kubernetes-validate``, strict: unknown fields fail), the kustomize base and overlays rendered and
validated as they would be applied, and the settings that matter checked on the rendered objects:
probe paths, security context, the shutdown arithmetic, resources, labels that select each other, and the
compose file's health check and read-only model mount.

No cluster and no container engine needed: these run in ``make test``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from support.manifests import (
    DOCKER,
    K8S,
    KUSTOMIZATIONS,
    ROOT,
    by_kind,
    env_of,
    is_resource,
    load_all,
    quantity,
    render,
    seconds,
)

# The oldest Kubernetes release still supported upstream that has everything used here (the preStop
# `sleep` action is on by default from 1.30). Validating against the oldest target catches fields a
# newer schema would accept but an older cluster would refuse.
KUBERNETES_VERSION = "1.30.0"
# Not `container` (which tests/container implies): no engine needed, so these run in `make test`.
pytestmark = pytest.mark.unit
APP = "lstm-service"


# ---- schema validation ---------------------------------------------------------------------------------

RESOURCE_FILES = sorted(
    path
    for path in K8S.rglob("*.yaml")
    if path.name != "kustomization.yaml" and is_resource((load_all(path) or [None])[0])
)


def test_every_manifest_file_is_found() -> None:
    names = {path.relative_to(K8S).as_posix() for path in RESOURCE_FILES}
    assert {"base/deployment.yaml", "base/service.yaml", "base/hpa.yaml", "base/pdb.yaml"} <= names
    for folder in KUSTOMIZATIONS:  # every file a kustomization names exists
        (kustomization,) = load_all(folder / "kustomization.yaml")
        for entry in kustomization.get("resources", []) + [
            p["path"] for p in kustomization.get("patches", [])
        ]:
            assert (folder / entry).exists(), f"{folder.name}/kustomization.yaml names a missing {entry}"


# Custom resources (KEDA, the Prometheus Operator) have no schema in kubernetes-validate; check_custom()
# checks the fields these files use, by the projects' documented specifications.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}


def validate(doc: dict[str, Any]) -> None:
    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        check_custom(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _only(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(mapping) - allowed
    assert not unknown, f"{where}: unknown fields {unknown}"


def check_custom(doc: dict[str, Any]) -> None:
    """The fields of a ScaledObject (keda.sh/v1alpha1) or a ServiceMonitor (monitoring.coreos.com/v1) that
    these files use, strictly: an unknown or misspelt field fails, as in the Kubernetes schemas above."""
    _only(doc, {"apiVersion", "kind", "metadata", "spec"}, doc["kind"])
    spec = doc["spec"]
    if doc["kind"] == "ScaledObject":
        _only(spec, {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                     "cooldownPeriod", "advanced", "triggers"}, "ScaledObject.spec")  # fmt: skip
        assert spec["scaleTargetRef"]["name"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        _only(spec["advanced"], {"horizontalPodAutoscalerConfig"}, "spec.advanced")
        hpa = spec["advanced"]["horizontalPodAutoscalerConfig"]
        _only(hpa, {"name", "behavior"}, "horizontalPodAutoscalerConfig")
        _only(hpa["behavior"], {"scaleUp", "scaleDown"}, "behavior")
        for trigger in spec["triggers"]:
            _only(trigger, {"type", "metadata"}, "trigger")
            assert trigger["type"] == "prometheus"
            _only(trigger["metadata"], {"serverAddress", "query", "threshold"}, "prometheus trigger")
            assert all(isinstance(value, str) for value in trigger["metadata"].values()), "metadata: strings"
            float(trigger["metadata"]["threshold"])
    else:
        _only(spec, {"selector", "endpoints"}, "ServiceMonitor.spec")
        for endpoint in spec["endpoints"]:
            _only(endpoint, {"port", "path", "interval", "scrapeTimeout"}, "endpoint")


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: p.relative_to(K8S).as_posix())
def test_manifest_file_validates_against_the_kubernetes_schema(path: Path) -> None:
    for doc in load_all(path):
        validate(doc)


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda p: p.relative_to(K8S).as_posix())
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_rendered_kustomization_validates(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        validate(doc)
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in rendered]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.relative_to(K8S).as_posix())
def test_renderer_agrees_with_kubectl_kustomize(folder: Path) -> None:
    """Where kubectl is installed, the real kustomize renders exactly what the checks above looked at."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the checks ran on this test's own rendering only")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0 and "unknown command" in result.stderr:
        pytest.skip(f"this kubectl has no kustomize: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    real = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout) if d}
    ours = {(d["kind"], d["metadata"]["name"]): d for d in render(folder)}
    assert real == ours


# ---- what the objects say ------------------------------------------------------------------------------


def _probe(container: dict[str, Any], kind: str) -> dict[str, Any]:
    probe = container.get(kind)
    assert probe is not None, f"{container['name']} has no {kind}"
    return probe


def test_probes(rendered: list[dict[str, Any]]) -> None:
    (container,) = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert _probe(container, "readinessProbe")["httpGet"]["path"] == "/readyz"
    assert _probe(container, "livenessProbe")["httpGet"]["path"] == "/livez"
    startup = _probe(container, "startupProbe")
    # "loading finished", not "every model healthy": /readyz here would restart a pod with one bad
    # bundle forever (test_probes_live.py runs a server with such a store)
    assert startup["httpGet"]["path"] == "/livez"
    # readiness that keeps the healthy models of a pod serving when one bundle is bad
    assert env_of(container).get("LSTM_SERVICE_READINESS") in ("any", "default")
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _probe(container, kind)["httpGet"]["port"] in ports, f"{kind} port is not a container port"
    # model loading gets a startup budget of at least a minute before the kubelet restarts the container
    assert startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) >= 60
    assert ports["http"] == int(env_of(container).get("LSTM_SERVICE_PORT", "8000"))


def test_pod_and_containers_are_locked_down(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"].get("runAsUser", 10001) != 0
    assert pod.get("automountServiceAccountToken") is False
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context.get("privileged", False) is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert not context["capabilities"].get("add"), container["name"]
        assert container.get("runAsUser", 1) != 0


def test_tmp_is_a_writable_empty_dir(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (container,) = pod["containers"]
    (tmp,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    assert not tmp.get("readOnly", False)


def test_model_store_mount_is_read_only_at_the_configured_path(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    store = env_of(container)["LSTM_SERVICE_MODEL_STORE"]
    mounts = [mount for mount in container["volumeMounts"] if mount["mountPath"] == store]
    # base: the bundles baked into the image (no mount); overlays: one read-only volume over them
    for mount in mounts:
        assert mount["readOnly"] is True
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = by_kind(rendered, "PersistentVolumeClaim")
            assert pvc["metadata"]["name"] == claim
            # replicas on many nodes read it while the loader Job writes it
            assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
            assert pvc["spec"].get("storageClassName"), "say where the storage class is set"
            # bundles added to the volume reach running pods through the store poller
            assert float(env_of(container).get("LSTM_SERVICE_RELOAD_INTERVAL_SECONDS", "0")) > 0
        for init in pod.get("initContainers", []):  # whatever fills the volume writes where it is mounted
            writes = [m for m in init.get("volumeMounts", []) if m["name"] == mount["name"]]
            assert writes and not writes[0].get("readOnly", False)
            assert writes[0]["mountPath"] in init["command"][-1]


def test_grace_period_covers_pre_stop_drain_and_the_longest_request(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env["LSTM_SERVICE_DRAIN_SECONDS"])
    longest_request = float(env["LSTM_SERVICE_REQUEST_TIMEOUT_SECONDS"])
    assert pre_stop >= 3, "endpoints need a few seconds to stop sending before the server drains"
    margin = 5  # for the process to exit and the kubelet to notice
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + longest_request + margin


def test_resources_have_requests_and_limits(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]
    for container in pod["containers"] + pod.get("initContainers", []):
        resources = container["resources"]
        for name in ("cpu", "memory"):
            request, limit = resources["requests"][name], resources["limits"][name]
            assert 0 < quantity(request) <= quantity(limit), f"{container['name']} {name}"
    (server,) = pod["containers"]
    # the runtime and two models (about 160 MiB at most without vector answers), plus the bytes of vector
    # answers a worker may build at once
    budget = float(env_of(server).get("LSTM_SERVICE_MAX_VECTOR_BYTES", 96 * 2**20))
    assert quantity(server["resources"]["limits"]["memory"]) >= 160 * 2**20 + budget
    # onnxruntime's threads fit in the CPU limit
    assert int(env_of(server).get("LSTM_SERVICE_INTRA_OP_THREADS", "1")) <= max(
        1, quantity(server["resources"]["limits"]["cpu"])
    )


def test_service_hpa_and_pdb_point_at_the_deployment(rendered: list[dict[str, Any]]) -> None:
    deployment = by_kind(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"

    service = by_kind(rendered, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {port["name"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert all(port["targetPort"] in port_names for port in service["spec"]["ports"])

    scalers = [doc for doc in rendered if doc["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
    assert len(scalers) == 1, "one autoscaler per Deployment: two would fight over the replica count"
    (scaler,) = scalers
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert scaler["spec"]["scaleTargetRef"] == target
    if scaler["kind"] == "HorizontalPodAutoscaler":
        minimum, maximum = scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]
        for metric in scaler["spec"]["metrics"]:
            if metric["type"] == "Resource":
                assert metric["resource"]["name"] == "cpu"
                assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
            else:  # a custom metric: one the service exports, averaged per pod
                assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
                assert metric["pods"]["metric"]["name"] in EXPORTED_METRICS
    else:
        minimum, maximum = scaler["spec"]["minReplicaCount"], scaler["spec"]["maxReplicaCount"]
        for trigger in scaler["spec"]["triggers"]:
            (name,) = re.findall(r"lstm_service_\w+", trigger["metadata"]["query"])
            assert name in EXPORTED_METRICS
            # the label the ServiceMonitor's targets carry selects this Service's pods
            assert f'service="{service["metadata"]["name"]}"' in trigger["metadata"]["query"]
            assert any(doc["kind"] == "ServiceMonitor" for doc in rendered), "KEDA's queries need a scrape"
    assert 2 <= minimum <= maximum

    pdb = by_kind(rendered, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # the budget must leave room for a voluntary eviction at the minimum replica count
    assert pdb["spec"]["minAvailable"] < minimum


def _exported_metrics() -> set[str]:
    """The gauge names the service's metrics modules define (what an autoscaler may query)."""
    from service.observability import load_metrics, metrics

    return {
        value._name
        for module in (metrics, load_metrics)
        for value in vars(module).values()
        if type(value).__name__ == "Gauge"
    }


EXPORTED_METRICS = _exported_metrics()


def test_the_service_monitor_scrapes_the_services_port_and_the_pods_are_annotated() -> None:
    (monitor,) = load_all(K8S / "monitoring" / "servicemonitor.yaml")
    (service,) = load_all(K8S / "base" / "service.yaml")
    (deployment,) = load_all(K8S / "base" / "deployment.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= {
        port["name"] for port in service["spec"]["ports"]
    }
    assert all(endpoint["path"] == "/metrics" for endpoint in monitor["spec"]["endpoints"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) in {port["containerPort"] for port in container["ports"]}


PLACEHOLDER_IMAGE = "set-your-image.invalid/lstm-service"


def test_the_image_is_a_placeholder_until_an_overlay_sets_it(rendered: list[dict[str, Any]]) -> None:
    (container,) = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    # either base's placeholder, which can never be pulled (.invalid never resolves), or a real image
    # with an explicit tag: never "lstm-service:latest", which pulls from Docker Hub or runs a stale copy
    assert image == PLACEHOLDER_IMAGE or (":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"))


def test_the_user_overlay_example_sets_the_image() -> None:
    (kustomization,) = load_all(K8S / "overlays" / "my-cluster" / "kustomization.yaml")
    assert kustomization["resources"] == ["../../base"]
    (container,) = by_kind(render(K8S / "overlays" / "my-cluster"), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == "registry.example.com/lstm-service:0.1.0"


def test_secrets_come_from_a_secret_and_the_api_key_fails_closed(rendered: list[dict[str, Any]]) -> None:
    (container,) = by_kind(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    example = load_all(K8S / "overlays" / "my-cluster" / "secret.example.yaml")[0]
    for variable in ("LSTM_SERVICE_API_KEY", "LSTM_SERVICE_ADMIN_TOKEN"):
        reference = env[variable]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[variable], f"{variable} must not be written in the manifest"
        assert reference["name"] == example["metadata"]["name"] and reference["key"] in example["stringData"]
    # a missing Secret stops the pod from starting instead of serving open inference; admin stays off (404)
    assert env["LSTM_SERVICE_API_KEY"]["valueFrom"]["secretKeyRef"].get("optional", False) is False
    assert env["LSTM_SERVICE_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    for key in example["stringData"].values():
        assert len(key) >= 16  # the example's placeholders pass the service's minimum length


def test_replicas_spread_over_nodes(rendered: list[dict[str, Any]]) -> None:
    pod = by_kind(rendered, "Deployment")["spec"]["template"]
    constraints = pod["spec"]["topologySpreadConstraints"]
    by_key = {constraint["topologyKey"]: constraint for constraint in constraints}
    assert "kubernetes.io/hostname" in by_key
    for constraint in constraints:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert constraint["maxSkew"] >= 1


def test_the_loader_job_writes_bundles_atomically_into_the_claim() -> None:
    folder = K8S / "overlays" / "models-pvc"
    (job,) = load_all(folder / "load-models-job.yaml")
    (pvc,) = load_all(folder / "pvc.yaml")
    pod = job["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    assert not mount.get("readOnly", False)
    script = container["command"][-1]
    # copied to a hidden folder (the store ignores it), then renamed into place
    assert ".tmp-load" in script and "mv " in script and mount["mountPath"] in script
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True


# ---- compose -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_service() -> dict[str, Any]:
    (compose,) = load_all(DOCKER / "compose.yaml")
    return compose["services"][APP]


def test_compose_health_check_probes_readiness(compose_service: dict[str, Any]) -> None:
    check = compose_service["healthcheck"]
    assert check["test"][0] == "CMD" and check["test"][1] == "python"  # no shell, no curl in slim images
    assert "/readyz" in check["test"][-1]
    assert seconds(check["start_period"]) >= 10
    assert seconds(check["timeout"]) < seconds(check["interval"])


def test_compose_mounts_the_model_store_read_only(compose_service: dict[str, Any]) -> None:
    store = compose_service["environment"]["LSTM_SERVICE_MODEL_STORE"]
    (mount,) = [v for v in compose_service["volumes"] if v["target"] == store]
    assert mount["type"] == "bind" and mount["read_only"] is True
    # the source defaults (``${MODEL_STORE:-default}``) to the repository's store; compose resolves
    # relative paths against the compose file's folder
    default = re.fullmatch(r"\$\{MODEL_STORE:-(.+)\}", mount["source"])
    assert default, "the source should be overridable with MODEL_STORE"
    assert (DOCKER / default.group(1)).resolve() == ROOT / "model_store"


def test_compose_limits_and_hardening(compose_service: dict[str, Any]) -> None:
    limits = compose_service["deploy"]["resources"]["limits"]
    budget = float(compose_service["environment"].get("LSTM_SERVICE_MAX_VECTOR_BYTES", 96 * 2**20))
    assert quantity(limits["cpus"]) > 0 and quantity(limits["memory"]) >= 160 * 2**20 + budget
    assert compose_service["read_only"] is True
    assert any(entry.split(":")[0] == "/tmp" for entry in compose_service["tmpfs"])
    assert compose_service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in compose_service["security_opt"]
    env = compose_service["environment"]
    needed = float(env["LSTM_SERVICE_DRAIN_SECONDS"]) + float(env["LSTM_SERVICE_REQUEST_TIMEOUT_SECONDS"])
    assert seconds(compose_service["stop_grace_period"]) >= needed


def test_compose_publishes_on_loopback_and_passes_secrets_through(compose_service: dict[str, Any]) -> None:
    (port,) = compose_service["ports"]
    bind = re.fullmatch(r"\$\{BIND:-([0-9.]+)\}:\$\{PORT:-(\d+)\}:8000", port)
    assert bind and bind.group(1) == "127.0.0.1", f"publish on loopback unless BIND says otherwise: {port}"
    env = compose_service["environment"]
    # no value: compose takes it from the shell when set there and leaves it unset otherwise, never empty
    assert env["LSTM_SERVICE_API_KEY"] is None and env["LSTM_SERVICE_ADMIN_TOKEN"] is None


# ---- the image's licence and defaults ------------------------------------------------------------------


def test_the_license_file_matches_the_image_label_and_the_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    label = re.search(r'org\.opencontainers\.image\.licenses="([^"]+)"', dockerfile)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")

    assert label is not None and label.group(1) == "Apache-2.0"
    assert 'license = "Apache-2.0"' in pyproject
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS" in text
    # the image carries it: the build context lets it in and the runtime stage copies it
    assert "!LICENSE" in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "COPY LICENSE " in dockerfile


def test_the_image_bakes_in_no_default_model() -> None:
    """A user's store mounted over /models need not hold the bundled models (the first by name serves)."""
    runtime = (ROOT / "Dockerfile").read_text(encoding="utf-8").rsplit("\nFROM ", 1)[1]  # the last stage
    env_lines = runtime.split("\nENV ", 1)[1].split("\n\n", 1)[0]
    assert "LSTM_SERVICE_MODEL_STORE=/models" in env_lines
    assert "DEFAULT_MODEL" not in env_lines
    for folder in KUSTOMIZATIONS:
        for doc in render(folder):
            for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                assert "LSTM_SERVICE_DEFAULT_MODEL" not in env_of(container), folder
