"""Static checks of the deployment files: Dockerfile, docker-compose.yml and deploy/k8s.

No Docker engine or cluster is needed: the files are parsed and compared with the code they
run (the `jorge` commands and the Settings fields); the compose file is validated against the
Compose Specification's schema. Rendering and schema validation of the overlays: test_k8s_render.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from jorge_cli.main import WORKER_NAMES, app
from jorge_cli.service_process import CRM_SYNC_ROLES
from jorge_runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"

SETTINGS_VARIABLES = frozenset(name.upper() for name in Settings.model_fields)
# Read by a library rather than by Settings (the Anthropic SDK reads its key itself).
APP_EXTERNAL_VARIABLES = frozenset({"ANTHROPIC_API_KEY"})
APP_IMAGE = "jorge-platform"
# Variables of the infrastructure images, by compose service.
INFRA_VARIABLE_PREFIXES = {
    "kafka": ("KAFKA_", "CLUSTER_ID"),
    "postgres": ("POSTGRES_", "PG"),
    "redis": ("REDIS_",),
    "redis-exporter": ("REDIS_",),
    "postgres-exporter": ("DATA_SOURCE_", "PG_EXPORTER_"),
}

INFRA_SERVICES = frozenset(INFRA_VARIABLE_PREFIXES)
SETUP_COMMANDS = {"migrate": ["migrate"], "topics": ["topics"]}
LONG_RUNNING_COMMANDS = {"gateway": ["gateway"], **{name: ["worker", name] for name in WORKER_NAMES}}
APP_COMMANDS = {**SETUP_COMMANDS, **LONG_RUNNING_COMMANDS}
# Kubernetes workload -> its command: crm_sync is one Deployment per half (CRM_SYNC_ROLE).
K8S_COMMANDS = {
    **{f"jorge-{name.replace('_', '-')}": argv for name, argv in APP_COMMANDS.items() if name != "crm_sync"},
    **{f"jorge-crm-sync-{role}": ["worker", "crm_sync"] for role in CRM_SYNC_ROLES},
}

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|_DSN|CREDENTIALS_KEY")
# Where each secret comes from in Kubernetes: the Secret jorge-secrets, and which pods need it.
SECRETS_BY_WORKLOAD = {
    "jorge-gateway": {
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "CRM_CREDENTIALS_KEY",
        "KAFKA_SASL_PASSWORD",
        "SENTRY_DSN",
    },
    "jorge-qualifier": {
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_SASL_PASSWORD",
        "SENTRY_DSN",
        "ANTHROPIC_API_KEY",
    },
    "jorge-matcher": {"DATABASE_URL", "REDIS_URL", "KAFKA_SASL_PASSWORD", "SENTRY_DSN"},
    "jorge-seller-analyzer": {"DATABASE_URL", "REDIS_URL", "KAFKA_SASL_PASSWORD", "SENTRY_DSN"},
    # crm_sync's webhook half signs with secrets sealed by CRM_CREDENTIALS_KEY and never calls GHL.
    "jorge-crm-sync-webhooks": {
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_SASL_PASSWORD",
        "SENTRY_DSN",
        "CRM_CREDENTIALS_KEY",
    },
    "jorge-crm-sync-ghl": {
        "DATABASE_URL",
        "REDIS_URL",
        "KAFKA_SASL_PASSWORD",
        "SENTRY_DSN",
        "CRM_CREDENTIALS_KEY",
        "GHL_TOKEN",
        "GHL_LOCATION_ID",
        "GHL_ORGANIZATION",
        "GHL_CLIENT_ID",
        "GHL_CLIENT_SECRET",
    },
    "jorge-migrate": {"DATABASE_URL"},
    "jorge-topics": {"KAFKA_SASL_PASSWORD"},
}


def _command_names() -> set[str]:
    """Names of the commands registered on the Typer app, as typed on the command line."""
    names = set()
    for command in app.registered_commands:
        assert command.callback is not None
        names.add(command.name or command.callback.__name__.lower().replace("_", "-"))
    return names


def _check_jorge_argv(argv: list[str]) -> None:
    assert argv, "empty command"
    assert argv[0] in _command_names(), f"`jorge {argv[0]}` is not a jorge command"
    if argv[0] == "worker":
        assert len(argv) == 2 and argv[1] in WORKER_NAMES, f"bad worker command {argv}"


def _interpolate(value: object) -> str:
    """What compose substitutes with an empty environment: ${VAR:-default} -> default."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _validate_settings(env: dict[str, str]) -> Settings:
    """Validate exactly these variables as Settings (no process environment, no .env)."""
    return Settings.model_validate(
        {key.lower(): value for key, value in env.items() if key in SETTINGS_VARIABLES}
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# Files kustomize reads as data, not objects: a ConfigMap's content and the Rollout transform config.
NOT_MANIFESTS = frozenset({"postgres-exporter-queries.yaml", "rollout-transform.yaml"})


def _manifest_files() -> list[Path]:
    found = sorted(K8S.rglob("*.yaml")) + sorted(K8S.rglob("*.yml"))
    return [path for path in found if path.name not in NOT_MANIFESTS]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    """Every Kubernetes object in the base and the overlay (not the kustomization files)."""
    return [
        doc for path in _manifest_files() for doc in _documents(path) if doc.get("kind") != "Kustomization"
    ]


def _by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in resources if doc["kind"] == kind}


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "Job", "Rollout"):
        return doc["spec"]["template"]["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _containers(
    resources: list[dict[str, Any]], *, jorge_only: bool = True
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every workload's container (by default only those
    running the Jorge image, not the exporters' or the backup's)."""
    found = []
    for doc in resources:
        if (pod := _pod_spec(doc)) is not None:
            found += [
                (doc["metadata"]["name"], pod, c)
                for c in pod["containers"]
                if not jorge_only or c["image"].split(":")[0].endswith(APP_IMAGE)
            ]
    return found


def _config_literals() -> dict[str, str]:
    """The ConfigMap jorge-config as the production overlay renders it (base, then merge)."""
    values: dict[str, str] = {}
    for kustomization in (BASE / "kustomization.yaml", PRODUCTION / "kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("configMapGenerator", []):
            if generator["name"] == "jorge-config":
                values.update(literal.split("=", 1) for literal in generator.get("literals", []))
    return values


# ----------------------------------------------------------------------- Dockerfile


def test_dockerfile_runs_jorge_as_non_root_without_the_embedded_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_VERSION=3\.11$", text, re.M)
    assert len(re.findall(r"^FROM python:\$\{PYTHON_VERSION\}-slim AS \w+$", text, re.M)) == 2
    assert 'ENTRYPOINT ["jorge"]' in text
    assert 'CMD ["gateway"]' in text
    assert "PYTHONUNBUFFERED=1" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and not users[-1].startswith(("0", "root")), "the runtime stage must not run as root"
    assert "embedded" not in re.sub(r"^#.*$", "", text, flags=re.M), "no embedded extra in the image"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".jorge", ".pytest_cache", ".env"} <= ignored


# ----------------------------------------------------------------------- docker compose


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "tests" / "data" / "schemas" / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, f"{errors[0].message} at {list(errors[0].absolute_path)}"


def test_compose_app_services_read_secrets_from_the_env_file(services: dict[str, Any]) -> None:
    for name in APP_COMMANDS:
        assert services[name]["env_file"] == [{"path": ".env", "required": True}], name


def test_compose_names_every_service(services: dict[str, Any]) -> None:
    assert set(services) == INFRA_SERVICES | set(APP_COMMANDS)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("name", sorted(APP_COMMANDS))
def test_compose_app_services_run_real_jorge_commands(services: dict[str, Any], name: str) -> None:
    command = services[name]["command"]
    assert command == APP_COMMANDS[name]
    _check_jorge_argv(command)


def test_compose_environment_names_are_settings_or_known(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for variable in _environment(service):
            if name in INFRA_SERVICES:
                assert variable.startswith(INFRA_VARIABLE_PREFIXES[name]), f"{name}: {variable}"
            else:
                assert variable in SETTINGS_VARIABLES | APP_EXTERNAL_VARIABLES, f"{name}: unknown {variable}"


@pytest.mark.parametrize("name", sorted(APP_COMMANDS))
def test_compose_app_environment_is_valid_settings(services: dict[str, Any], name: str) -> None:
    env = {key: _interpolate(value) for key, value in _environment(services[name]).items()}
    settings = _validate_settings(env)
    assert settings.kafka_enable_idempotence is True
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.database_url and "@postgres:5432/" in settings.database_url
    assert settings.redis_url and settings.redis_url.startswith("redis://redis:6379")
    if name == "gateway":
        assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8000)
        assert "8000" in str(services[name]["ports"][0])
    if name in WORKER_NAMES:
        assert (settings.health_host, settings.health_port) == ("0.0.0.0", 8081)


def test_compose_commits_no_secret_values(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for variable, value in _environment(service).items():
            if _SECRET_NAME.search(variable):
                assert value.startswith("${"), f"{name}: {variable} must come from the environment"
            if variable == "DATABASE_URL":
                password = value.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
                assert password.startswith("${"), f"{name}: the database password must be a ${{VAR}}"


def test_compose_startup_order_restart_and_healthchecks(services: dict[str, Any]) -> None:
    for name in SETUP_COMMANDS:
        assert services[name]["restart"] == "no", "a one-shot job must not be restarted"
    for name in LONG_RUNNING_COMMANDS:
        service = services[name]
        assert service["restart"] == "unless-stopped"
        depends = service["depends_on"]
        for job in SETUP_COMMANDS:
            assert depends[job]["condition"] == "service_completed_successfully", f"{name} -> {job}"
        probe = " ".join(service["healthcheck"]["test"])
        port = 8000 if name == "gateway" else 8081
        assert f"http://127.0.0.1:{port}/health/ready" in probe, f"{name}: healthcheck {probe}"
    for name in INFRA_SERVICES:
        assert services[name]["restart"] == "unless-stopped"
        # Exporter images have no shell or HTTP client for a healthcheck; Prometheus's `up` watches them.
        if not name.endswith("-exporter"):
            assert services[name]["healthcheck"]["test"], name


# ----------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_k8s_file_parses_with_api_version_and_kind(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path} is empty"
    for doc in documents:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion and kind required"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without a name"


@pytest.mark.parametrize(
    "directory", [BASE, PRODUCTION, K8S / "overlays" / "staging"], ids=["base", "production", "staging"]
)
def test_kustomizations_point_at_existing_files(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for entry in kustomization.get("resources", []):
        assert (directory / entry).exists(), f"{directory.name}: missing resource {entry}"


def test_k8s_configmap_names_are_settings_and_values_validate(resources: list[dict[str, Any]]) -> None:
    literals = _config_literals()
    for doc in resources:
        if doc["kind"] == "ConfigMap":
            literals.update(doc.get("data", {}))
    assert literals
    unknown = set(literals) - SETTINGS_VARIABLES
    assert not unknown, f"not Settings fields: {sorted(unknown)}"
    assert not {"DATABASE_URL", "REDIS_URL"} & set(literals), "connection URLs belong in the Secret"
    settings = _validate_settings(literals)
    assert settings.environment == "production"
    assert settings.kafka_enable_idempotence is True
    assert (settings.api_host, settings.health_host) == ("0.0.0.0", "0.0.0.0")


def test_k8s_references_secrets_without_committing_any(resources: list[dict[str, Any]]) -> None:
    assert not _by_kind(resources, "Secret"), "secrets are created out of band, never committed"
    for workload, _pod, container in _containers(resources, jorge_only=False):
        for item in container.get("env", []):
            assert "value" not in item or not _SECRET_NAME.search(item["name"]), f"{workload}: {item}"
    for workload, _pod, container in _containers(resources):
        from_secret = {
            item["name"]
            for item in container.get("env", [])
            if item.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "jorge-secrets"
        }
        assert from_secret == SECRETS_BY_WORKLOAD[workload], workload
        for item in container.get("env", []):
            if "valueFrom" in item:
                assert item["valueFrom"]["secretKeyRef"]["key"] == item["name"], f"{workload}: {item}"


def test_every_secret_setting_reaches_a_pod_from_the_secret() -> None:
    """Every secret Settings field (and the connection URLs, the JWT key) is delivered to the pods
    that read it, from jorge-secrets: a new secret setting fails here until it is wired."""
    secret_fields = {
        name.upper() for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
    }
    delivered = set().union(*SECRETS_BY_WORKLOAD.values())
    assert secret_fields | {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} <= delivered


def test_k8s_workloads_run_real_commands_with_known_variables(resources: list[dict[str, Any]]) -> None:
    seen = {}
    for workload, _pod, container in _containers(resources):
        _check_jorge_argv(container["args"])
        seen[workload] = container["args"]
        for item in container.get("env", []):
            assert item["name"] in SETTINGS_VARIABLES | APP_EXTERNAL_VARIABLES, f"{workload}: {item['name']}"
        refs = [source["configMapRef"]["name"] for source in container.get("envFrom", [])]
        assert refs == ["jorge-config"], f"{workload}: envFrom {refs}"
    assert seen == K8S_COMMANDS


def test_k8s_pods_are_hardened_and_sized(resources: list[dict[str, Any]]) -> None:
    for workload, pod, container in _containers(resources, jorge_only=False):
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, workload
        assert security["allowPrivilegeEscalation"] is False, workload
        assert security["capabilities"]["drop"] == ["ALL"], workload
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{workload}: {kind}"


def _probe(container: dict[str, Any], kind: str) -> tuple[str, int]:
    get = container[kind]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    return get["path"], port


def test_k8s_probes_mean_what_they_say(resources: list[dict[str, Any]]) -> None:
    """Readiness = can do its job now (/health/ready); liveness = the process answers (/health),
    never a dependency; the gateway's metrics are scraped on its admin port, which no Service exposes."""
    config = _validate_settings(_config_literals())
    assert config.admin_port is not None and config.admin_port != config.api_port
    gateway_doc = _by_kind(resources, "Rollout")["jorge-gateway"]
    gateway = gateway_doc["spec"]["template"]["spec"]["containers"][0]
    assert _probe(gateway, "readinessProbe") == ("/health/ready", config.api_port)
    assert _probe(gateway, "livenessProbe") == ("/health", config.api_port)
    assert {p["containerPort"] for p in gateway["ports"]} == {config.api_port, config.admin_port}
    annotations = gateway_doc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.admin_port)
    for service in _by_kind(resources, "Service").values():
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"], "the admin port stays private"
    deployments = _by_kind(resources, "Deployment")
    for name, argv in K8S_COMMANDS.items():
        if argv[0] != "worker":
            continue
        worker = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert _probe(worker, "readinessProbe") == ("/health/ready", config.health_port), name
        assert _probe(worker, "livenessProbe") == ("/health", config.health_port), name


def test_k8s_gateway_services_pdb_and_scaler(resources: list[dict[str, Any]]) -> None:
    rollout = _by_kind(resources, "Rollout")["jorge-gateway"]
    labels = rollout["spec"]["template"]["metadata"]["labels"]
    for name in ("jorge-gateway", "jorge-gateway-canary"):
        assert _by_kind(resources, "Service")[name]["spec"]["selector"].items() <= labels.items()
    pdb = _by_kind(resources, "PodDisruptionBudget")["jorge-gateway"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    scaled = _by_kind(resources, "ScaledObject")["jorge-gateway"]
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    assert "replicas" not in rollout["spec"], "KEDA owns the gateway's replica count"
