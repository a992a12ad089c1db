"""The deployment files, checked from outside.

- docker-compose.yml through the real `docker-compose config` (Debian's docker-compose 1.29, which
  `make install` installs): the services, health checks, start-up order, loopback ports, one
  image, the task-queue split, and the refusal to start without the required secrets;
- the Kubernetes manifests in deploy/k8s and the collector's configuration;
- the search-attribute job against a real Temporal dev server: twice, and over a conflict;
- the image's health check script, against real sockets.

PyYAML is not a dependency of the project. docker-compose is built on it, so YAML is read with
the interpreter docker-compose runs on and comes back as JSON.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from ratchet.search_keys import ALL as RATCHET_SEARCH_ATTRIBUTES
from ratchet.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COLLECTOR_CONFIG = DEPLOY / "otel-collector.yaml"
HEALTHCHECK = DEPLOY / "healthcheck.py"
SEARCH_ATTRIBUTES_JOB = DEPLOY / "temporal" / "search-attributes.sh"

REQUIRED_SECRETS = {"POSTGRES_PASSWORD": "pg-test-password", "RATCHET_API_TOKEN": "api-test-token",
                    "OBJECT_STORE_PASSWORD": "store-test-password"}  # fmt: skip
OPTIONAL_SECRETS = ("ANTHROPIC_API_KEY", "RATCHET_SENTRY_CLIENT_SECRET", "GITHUB_TOKEN")
RATCHET_SERVICES = ("api", "worker", "worker-sandbox")
ONE_SHOTS = {"temporal-schema", "temporal-search-attributes", "object-store-bucket"}
SERVICES = {
    "postgresql", "temporal", "temporal-ui", "otel-collector", "jaeger", "object-store",
    *RATCHET_SERVICES,
    *ONE_SHOTS,
}  # fmt: skip
# What the code uses (ratchet/search_keys.py): the job must register exactly these, with these
# types.
SEARCH_ATTRIBUTES = {key.name: int(key.indexed_value_type) for key in RATCHET_SEARCH_ATTRIBUTES}


# --- helpers ---------------------------------------------------------------------------------


def compose_command() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed: `make install` installs Debian's docker-compose "
            "(apt-get install -y docker-compose); these tests run its `config` command"
        )
    return found


def yaml_documents(texts: dict[str, str]) -> dict[str, list[Any]]:
    """Every YAML document of each text, parsed by the interpreter docker-compose runs on."""
    shebang = Path(compose_command()).read_bytes().split(b"\n", 1)[0].decode()
    if not shebang.startswith("#!"):
        pytest.fail(f"docker-compose is not a Python script here ({shebang[:40]!r})")
    program = (
        "import json, sys, yaml\n"
        "texts = json.load(sys.stdin)\n"
        "json.dump({k: list(yaml.safe_load_all(v)) for k, v in texts.items()}, sys.stdout)\n"
    )
    done = subprocess.run(
        [*shebang[2:].split(), "-c", program],
        input=json.dumps(texts), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parsed: dict[str, list[Any]] = json.loads(done.stdout)
    return parsed


def run_compose_config(env_file: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    # Only PATH and the given variables: the developer's own exports must not hide a missing one,
    # and an empty --env-file stands in for any .env next to the compose file.
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **variables}
    return subprocess.run(
        [compose_command(), "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"),
         "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def host_ip(port: str | dict[str, Any]) -> str | None:
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = port.split(":")
    return parts[0] if len(parts) == 3 else None


@functools.cache
def manifests() -> dict[str, list[dict[str, Any]]]:
    files = sorted(K8S.glob("*.yaml"))
    docs = yaml_documents({f.name: f.read_text() for f in files})
    return {name: [d for d in found if d is not None] for name, found in docs.items()}


def resources(kind: str) -> list[dict[str, Any]]:
    return [d for docs in manifests().values() for d in docs if d["kind"] == kind]


def collector_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml_documents({"c": COLLECTOR_CONFIG.read_text()})["c"][0]
    return config


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def stack(env_file: Path) -> dict[str, Any]:
    done = run_compose_config(env_file, **REQUIRED_SECRETS)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml_documents({"config": done.stdout})["config"][0]
    return config


# --- docker-compose.yml ----------------------------------------------------------------------


def test_compose_runs_the_whole_stack_with_a_healthcheck_on_every_long_running_service(
    stack: dict[str, Any],
) -> None:
    services: dict[str, Any] = stack["services"]
    assert set(services) >= SERVICES, f"missing: {SERVICES - set(services)}"
    for name, service in services.items():
        if name in ONE_SHOTS:
            assert "restart" not in service, f"{name} runs once; a restart policy would loop"
            continue
        check = service.get("healthcheck", {})
        assert not check.get("disable") and check.get("test") not in (None, [], ["NONE"]), name


def test_ratchet_waits_for_a_healthy_cluster_that_knows_its_search_attributes(
    stack: dict[str, Any],
) -> None:
    services: dict[str, Any] = stack["services"]
    for name in RATCHET_SERVICES:
        conditions = depends(services[name])
        assert conditions.get("temporal") == "service_healthy", name
        assert conditions.get("temporal-search-attributes") == "service_completed_successfully"
    # Everywhere: a one-shot is waited for until it succeeded, anything else until healthy.
    for name, service in services.items():
        for dependency, condition in depends(service).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            )
            assert condition == expected, f"{name} -> {dependency}: {condition}"
    job = services["temporal-search-attributes"]
    assert "temporalio/admin-tools" in job["image"]
    assert any("search-attributes.sh" in part for part in job.get("entrypoint", []))


def test_published_ports_bind_loopback_only(stack: dict[str, Any]) -> None:
    published = {
        name: service["ports"] for name, service in stack["services"].items() if "ports" in service
    }
    assert {"api", "temporal-ui", "jaeger"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert host_ip(port) == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_api_and_workers_run_one_image_built_from_deploy_dockerfile(
    stack: dict[str, Any],
) -> None:
    services: dict[str, Any] = stack["services"]
    images = set()
    for name in RATCHET_SERVICES:
        build = services[name]["build"]
        assert build["dockerfile"] == "deploy/Dockerfile", name
        assert Path(build["context"]).resolve() == ROOT, name
        images.add(services[name]["image"])
    assert len(images) == 1, images
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert stages and all(stage == "python:3.11-slim" for stage in stages), stages
    installs = " ".join(line for line in dockerfile.splitlines() if "apt-get install" in line)
    assert "bubblewrap" in installs and "git" in installs
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and not users[-1].startswith(("root", "0")), users


def test_api_and_workers_share_the_object_store_telemetry_and_the_task_queue_split(
    stack: dict[str, Any],
) -> None:
    services: dict[str, Any] = stack["services"]
    envs = {name: services[name]["environment"] for name in RATCHET_SERVICES}
    for name, env in envs.items():
        assert env["RATCHET_HOME"] == "/data", name
        # A home of its own per container (an anonymous volume): no disk is shared.
        assert services[name]["volumes"] == ["/data"], f"{name}: a named volume is shared"
        assert env["RATCHET_ARTIFACTS_URL"] == "s3://ratchet/artifacts", name
        assert env["AWS_ENDPOINT_URL"] == "http://object-store:9000", name
        assert env["AWS_SECRET_ACCESS_KEY"] == REQUIRED_SECRETS["OBJECT_STORE_PASSWORD"], name
        assert depends(services[name])["object-store-bucket"] == "service_completed_successfully"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233", name
    names = ("RATCHET_TASK_QUEUE", "RATCHET_MODEL_TASK_QUEUE", "RATCHET_SANDBOX_TASK_QUEUE")
    queues = {tuple(env[n] for n in names) for env in envs.values()}
    assert queues == {("ratchet", "ratchet-models", "ratchet-sandbox")}, queues
    # Every queue has a poller, and the two kinds of worker poll disjoint queues.
    polled = {
        name: set(envs[name]["RATCHET_WORKER_QUEUES"].split(","))
        for name in ("worker", "worker-sandbox")
    }
    assert polled == {
        "worker": {"ratchet", "ratchet-models"},
        "worker-sandbox": {"ratchet-sandbox"},
    }
    # Only the sandbox worker runs repository code, so only it has bwrap's relaxed confinement,
    # and it refuses to start without a working sandbox.
    assert envs["worker-sandbox"]["RATCHET_REQUIRE_SANDBOX"] == "1"
    for name in RATCHET_SERVICES:
        service = services[name]
        assert not service.get("privileged"), name
        assert service.get("cap_drop") == ["ALL"], name
        unconfined = {o for o in service.get("security_opt", []) if o.endswith("=unconfined")}
        expected = (
            {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}
            if name == "worker-sandbox"
            else set()
        )
        assert unconfined == expected, name


@pytest.mark.parametrize("missing", sorted(REQUIRED_SECRETS))
def test_compose_refuses_to_run_without_a_required_secret(env_file: Path, missing: str) -> None:
    others = {k: v for k, v in REQUIRED_SECRETS.items() if k != missing}
    done = run_compose_config(env_file, **others)
    assert done.returncode != 0
    assert missing in done.stderr + done.stdout


def test_optional_secrets_left_unset_reach_ratchet_as_unset(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `${VAR:-}` hands an unset optional secret to the container as an empty string. It must
    # still read as "not configured": an empty Sentry secret would verify webhooks signed with
    # the empty key (which anyone can compute), an empty Anthropic key would pass for a key.
    for name in ("api", "worker"):
        env: dict[str, str] = stack["services"][name]["environment"]
        assert all(env.get(key, "") == "" for key in OPTIONAL_SECRETS), name
        for key in list(os.environ):
            if key.startswith(("RATCHET_", "TEMPORAL_", "OTEL_", "ANTHROPIC_", "GITHUB_")):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        settings = Settings()
        held = {
            "ANTHROPIC_API_KEY": settings.anthropic_api_key,
            "RATCHET_SENTRY_CLIENT_SECRET": settings.sentry_client_secret,
            "GITHUB_TOKEN": settings.github_token,
        }
        assert {k: v for k, v in held.items() if v is not None} == {}, name


# --- Kubernetes ------------------------------------------------------------------------------


def test_k8s_manifests_parse_and_hold_every_kind_without_a_namespace() -> None:
    found = dict(manifests())
    listed = next(d for d in found.pop("kustomization.yaml") if d["kind"] == "Kustomization")
    assert sorted(listed["resources"]) == sorted(found), "kustomization.yaml must list them all"
    kinds = {d["kind"] for docs in found.values() for d in docs}
    expected = {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret"}
    assert expected <= kinds, expected - kinds
    assert "PersistentVolumeClaim" not in kinds, "pods share no disk: no ReadWriteMany claim"
    for file, docs in found.items():
        for doc in docs:
            assert doc.get("apiVersion") and doc["metadata"].get("name"), file
            assert "namespace" not in doc["metadata"], f"{file}: {doc['metadata']['name']}"


def test_k8s_secret_holds_placeholders_only() -> None:
    (secret,) = resources("Secret")
    assert "data" not in secret, "base64 `data` could hide a real value: use stringData"
    values: dict[str, str] = secret["stringData"]
    assert set(values) == {"RATCHET_API_TOKEN", *OPTIONAL_SECRETS, "AWS_ACCESS_KEY_ID",
                           "AWS_SECRET_ACCESS_KEY"}  # fmt: skip
    assert values == dict.fromkeys(values, ""), "placeholders are empty: fill them in elsewhere"
    config = next(c for c in resources("ConfigMap") if c["metadata"]["name"] == "ratchet-config")
    assert not set(config["data"]) & set(values), "secrets belong in the Secret"
    expected = {"TEMPORAL_ADDRESS", "OTEL_EXPORTER_OTLP_ENDPOINT", "RATCHET_HOME",
                "RATCHET_ARTIFACTS_URL"}  # fmt: skip
    assert expected <= set(config["data"]), expected - set(config["data"])
    assert config["data"]["RATCHET_ARTIFACTS_URL"].startswith("s3://")


def test_k8s_pods_share_settings_and_secrets_and_no_disk() -> None:
    deployments = {d["metadata"]["name"]: d for d in resources("Deployment")}
    assert {"ratchet-api", "ratchet-worker", "ratchet-worker-sandbox", "otel-collector"} <= set(
        deployments
    )
    queues = {}
    for name in ("ratchet-api", "ratchet-worker", "ratchet-worker-sandbox"):
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"configMapRef": "ratchet-config", "secretRef": "ratchet-secrets"}, name
        # $RATCHET_HOME is the pod's own (a cache), never a volume another pod mounts.
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert "emptyDir" in mounts["/data"] and mounts["/data"]["emptyDir"]["sizeLimit"], name
        assert container["resources"]["requests"]["cpu"], f"{name}: an HPA needs a CPU request"
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        queues[name] = env.get("RATCHET_WORKER_QUEUES")
    assert queues["ratchet-worker"] == "ratchet,ratchet-models"
    assert queues["ratchet-worker-sandbox"] == "ratchet-sandbox"
    (api,) = deployments["ratchet-api"]["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["path"] == "/healthz", probe
    scaled = set()
    for hpa in resources("HorizontalPodAutoscaler"):
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        scaled.add(hpa["spec"]["scaleTargetRef"]["name"])
    assert "ratchet-worker" in scaled
    for service in resources("Service"):
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in deployments.values()
        ), f"Service {service['metadata']['name']} selects no pod"


# --- the collector ---------------------------------------------------------------------------


def test_collector_sends_traces_to_jaeger_and_has_a_metrics_pipeline(
    stack: dict[str, Any],
) -> None:
    config = collector_config()
    pipelines: dict[str, Any] = config["service"]["pipelines"]
    for pipeline in pipelines.values():  # everything a pipeline names is defined
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(part, [])) <= set(config.get(part) or {}), part
    trace_exporters = pipelines["traces"]["exporters"]
    to_jaeger = [
        e for e in trace_exporters
        if e.split("/")[0] == "otlp" and config["exporters"][e]["endpoint"].startswith("jaeger:")
    ]  # fmt: skip
    assert to_jaeger, trace_exporters
    assert "otlp" in pipelines["traces"]["receivers"]
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http == "0.0.0.0:4318"  # what OTEL_EXPORTER_OTLP_ENDPOINT points at, from elsewhere
    assert {e.split("/")[0] for e in pipelines["metrics"]["exporters"]} & {"debug", "prometheus"}
    # Compose mounts this very file, where the collector image reads its configuration.
    collector = stack["services"]["otel-collector"]
    assert any(
        Path(v.split(":")[0]) == COLLECTOR_CONFIG
        and v.split(":")[1] == "/etc/otelcol-contrib/config.yaml"
        for v in collector["volumes"]
    ), collector["volumes"]
    # Kubernetes runs the same configuration.
    (k8s,) = [c for c in resources("ConfigMap") if c["metadata"]["name"] == "otel-collector-config"]
    assert yaml_documents({"k": k8s["data"]["config.yaml"]})["k"][0] == config


# --- the search-attribute job ----------------------------------------------------------------


async def run_search_attribute_job(temporal_target: str, namespace: str) -> tuple[int, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `temporal`
        "TEMPORAL_ADDRESS": temporal_target,
        "TEMPORAL_NAMESPACE": namespace,
    }
    process = await asyncio.create_subprocess_exec(
        "sh", str(SEARCH_ATTRIBUTES_JOB), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_search_attribute_job_registers_keywords_and_tolerates_a_rerun(
    temporal_env: WorkflowEnvironment, temporal_target: str
) -> None:
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"  # a fresh one: the job must create it
    for attempt in ("first run", "re-run"):
        code, output = await run_search_attribute_job(temporal_target, namespace)
        assert code == 0, f"{attempt}:\n{output}"
    listed = await temporal_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    types = {name: listed.custom_attributes.get(name) for name in SEARCH_ATTRIBUTES}
    assert types == SEARCH_ATTRIBUTES
    assert set(types.values()) == {IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}


async def test_search_attribute_job_fails_on_a_name_taken_with_another_type(
    temporal_env: WorkflowEnvironment, temporal_target: str
) -> None:
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"
    await temporal_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={"RatchetRepo": IndexedValueType.INDEXED_VALUE_TYPE_TEXT},
    )
    for _ in range(50):  # a new namespace takes a moment to reach the server's caches
        try:
            await temporal_env.client.operator_service.add_search_attributes(request)
            break
        except RPCError:
            await asyncio.sleep(0.2)
    else:
        pytest.fail("could not add the conflicting search attribute")
    code, output = await run_search_attribute_job(temporal_target, namespace)
    assert code != 0
    assert "RatchetRepo" in output and "different type" in output


# --- the image's health check ----------------------------------------------------------------


def healthcheck(*args: str, **env: str) -> int:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args], env={"PATH": os.environ["PATH"], **env},
        capture_output=True, timeout=30, check=False,
    ).returncode  # fmt: skip


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_api_healthcheck_wants_a_2xx_answer(http_server: str) -> None:
    assert healthcheck("http", f"{http_server}/healthz") == 0
    assert healthcheck("http", f"{http_server}/broken") == 1
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    assert healthcheck("http", f"http://127.0.0.1:{closed}/healthz") == 1


def test_worker_healthcheck_wants_an_open_connection_to_temporal() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        address = f"127.0.0.1:{port}"
        assert healthcheck("temporal", TEMPORAL_ADDRESS=address) == 1  # listening is not enough
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert healthcheck("temporal", TEMPORAL_ADDRESS=address) == 0
            client.close()
        assert healthcheck("temporal", TEMPORAL_ADDRESS=address) == 1
