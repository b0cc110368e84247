"""deploy/k8s as an operator applies it: each overlay renders with `kubectl kustomize`, every object
validates (core kinds against the Kubernetes API schemas of kubernetes-validate, KEDA and Argo
Rollouts kinds against their vendored CRD schemas, tests/data/schemas/), and KEDA never scales a
worker past the partitions of a topic it consumes."""

from __future__ import annotations

import functools
import importlib
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from jorge_cli.main import WORKER_NAMES
from jorge_cli.service_process import CRM_SYNC_ROLES
from jorge_runtime.kafka.broker import create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources
from schemas.topics import ALL_TOPICS, CRM_RETRY_TOPICS, TopicNames
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = {name: ROOT / "deploy" / "k8s" / "overlays" / name for name in ("staging", "production")}
SCHEMAS = ROOT / "tests" / "data" / "schemas"
KUBERNETES_VERSION = "1.31"
CRD_FILES = (
    "keda.sh_scaledobjects.yaml",
    "argo-rollouts_rollout-crd.yaml",
    "argo-rollouts_analysis-template-crd.yaml",
)
PARTITIONS = {spec.name: spec.partitions for spec in ALL_TOPICS}


@functools.cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [require_tool("kubectl"), "kustomize", str(OVERLAYS[overlay])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the openAPIV3Schema of every served version of the vendored CRDs."""
    found = {}
    for name in CRD_FILES:
        crd = yaml.load((SCHEMAS / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506  a safe loader, the C one where built
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                found[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    return found


def strict(schema: Any) -> Any:
    """The schema refusing unknown fields, as `kubectl apply --validate=strict` does (the API server
    would silently prune them): a misspelt field is an error, not a no-op."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    if "properties" in schema:
        tightened["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
    return tightened


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_renders_and_every_object_validates(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = {doc["kind"] for doc in docs}
    assert {
        "Rollout",
        "AnalysisTemplate",
        "ScaledObject",
        "PodDisruptionBudget",
        "CronJob",
        "Ingress",
    } <= kinds
    assert "HorizontalPodAutoscaler" not in kinds, "KEDA owns every replica count"
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
        if schema is not None:
            checked = {**doc, "metadata": {"name": doc["metadata"]["name"]}}  # metadata: the API's own schema
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(checked), key=str)
            assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{where}: no schema for {doc['apiVersion']} {doc['kind']}; vendor its CRD")
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {
        "jorge-staging" if overlay == "staging" else "jorge-revenue-platform"
    }


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_generated_names_reach_every_workload_and_images_are_pinned(overlay: str) -> None:
    docs = rendered(overlay)
    config = next(
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "ConfigMap" and "jorge-config" in d["metadata"]["name"]
    )
    assert config.startswith("jorge-config-")
    for doc in docs:
        if doc["kind"] in ("Rollout", "Deployment"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                assert ":" in image and not image.endswith(":latest"), f"pinned tag needed: {image}"
                refs = [s["configMapRef"]["name"] for s in container.get("envFrom", [])]
                assert refs in ([], [config]), f"{doc['metadata']['name']}: {refs}"
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert {canary["stableService"], canary["canaryService"]} <= services
    templates = {d["metadata"]["name"] for d in docs if d["kind"] == "AnalysisTemplate"}
    assert {t["templateName"] for t in canary["analysis"]["templates"]} <= templates
    assert {"setWeight": 5} in canary["steps"], "the 5 % canary step"


def _subscriptions(brokers: list[Any]) -> set[tuple[str, str]]:
    return {
        (s.group_id, topic)
        for broker in brokers
        for s in broker.subscribers
        for topic in s.topic_names_for_subscribe
    }


#: Each Deployment of a worker: (worker, CRM_SYNC_ROLE or None) -> Deployment name.
DEPLOYMENTS: dict[tuple[str, str | None], str] = {
    (w, None): f"jorge-{w.replace('_', '-')}" for w in WORKER_NAMES if w != "crm_sync"
} | {("crm_sync", role): f"jorge-crm-sync-{role}" for role in CRM_SYNC_ROLES}


def consumed(worker: str, role: str | None = None) -> set[tuple[str, str]]:
    """(consumer group, topic) of every consumer the worker builds (nothing connects)."""
    settings = Settings(
        kafka_bootstrap_servers="kafka:9092",
        database_url="postgresql://jorge@postgres/jorge",
        redis_url="redis://redis:6379/0",
        kafka_consumer_group_prefix="jorge.",
    )
    if worker != "crm_sync":
        return _subscriptions([importlib.import_module(f"services.{worker}.app").create_app(settings).broker])
    from services.crm_sync.follow_ups.install import install_follow_ups
    from services.crm_sync.ghl.install import install_ghl_sync
    from services.crm_sync.webhook_delivery import install_webhook_delivery

    resources = WorkerResources(settings)
    if role == "webhooks":
        hooks = install_webhook_delivery(
            create_broker(settings, client_id="t"), resources, settings, TopicNames("")
        )
        return _subscriptions([hooks.consumers.broker])
    ghl = install_ghl_sync(settings, resources)
    install_follow_ups(settings, resources, ghl)  # follow-ups consume on the GHL half's broker
    retry = {("jorge.crm_sync.ghl.retry", TopicNames("")(spec)) for spec in CRM_RETRY_TOPICS}
    return _subscriptions([ghl.consumers.broker]) | retry


@pytest.mark.parametrize(("worker", "role"), sorted(DEPLOYMENTS, key=str), ids=lambda v: str(v))
def test_keda_scales_each_worker_on_its_groups_within_its_partitions(worker: str, role: str | None) -> None:
    docs = rendered("production")
    app = DEPLOYMENTS[(worker, role)]
    scaled = next(
        d for d in docs if d["kind"] == "ScaledObject" and d["spec"]["scaleTargetRef"]["name"] == app
    )
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    triggers = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in scaled["spec"]["triggers"]}
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"kafka"}
    groups = consumed(worker, role)
    # Every consumer group scales its worker, except the retry delay queue (its lag is waiting, not work).
    assert triggers == {(g, t) for g, t in groups if not t.startswith("crm_sync.retry.")}
    most = max(scaled["spec"]["maxReplicaCount"] for scaled in _scalers_of(app))
    for _group, topic in groups:
        assert PARTITIONS[topic] >= most, (
            f"{app} may run {most} replicas but {topic} has {PARTITIONS[topic]} partitions"
        )
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == app)
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert any(d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == app for d in docs)
    if role is not None:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"name": "CRM_SYNC_ROLE", "value": role} in container["env"], app


def test_crm_sync_halves_share_no_consumer_group() -> None:
    """Each half of crm_sync is its own Deployment with its own consumer groups: a GHL backlog
    is lag on the GHL groups only, and scales (and waits) only the GHL Deployment."""
    ghl, hooks = consumed("crm_sync", "ghl"), consumed("crm_sync", "webhooks")
    assert ghl and hooks
    assert not {group for group, _ in ghl} & {group for group, _ in hooks}


def _scalers_of(app: str) -> list[dict[str, Any]]:
    """The app's ScaledObject in every overlay (the most replicas any of them allows)."""
    return [
        d
        for overlay in OVERLAYS
        for d in rendered(overlay)
        if d["kind"] == "ScaledObject" and d["spec"]["scaleTargetRef"]["name"] == app
    ]


def test_gateway_scales_on_cpu_and_request_rate_and_spreads() -> None:
    docs = rendered("production")
    scaled = next(d for d in docs if d["kind"] == "ScaledObject" and d["metadata"]["name"] == "jorge-gateway")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "name": "jorge-gateway",
    }
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"cpu", "prometheus"}
    assert scaled["spec"]["minReplicaCount"] >= 3
    for doc in docs:
        if doc["kind"] in ("Rollout", "Deployment") and doc["metadata"]["labels"].get(
            "app.kubernetes.io/component"
        ) in (
            "gateway",
            "worker",
        ):
            keys = {c["topologyKey"] for c in doc["spec"]["template"]["spec"]["topologySpreadConstraints"]}
            assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, doc["metadata"]["name"]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "deploy" / "k8s" / "restore").glob("*.yaml")), ids=lambda p: p.name
)
def test_restore_runbook_manifests_validate(path: Path) -> None:
    """The objects the restore runbook applies by hand (in no overlay) validate too."""
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        volumes = doc["spec"].get("volumes") or doc["spec"]["template"]["spec"]["volumes"]
        assert {"claimName": "jorge-postgres-backups"} in [v.get("persistentVolumeClaim") for v in volumes]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_long_running_workload_has_a_disruption_budget(overlay: str) -> None:
    docs = rendered(overlay)
    budgets = [d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"]
    for doc in docs:
        if doc["kind"] in ("Deployment", "Rollout"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(b.items() <= labels.items() for b in budgets), f"{doc['metadata']['name']} has no PDB"
