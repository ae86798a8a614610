"""docker-compose.yml against the code and the files it runs.

No Docker engine runs here, so this holds the file to what the service reads
and to the deployment files beside it: every LRS_ variable the replicas set
is one ``Settings.from_env`` reads, the URLs name the compose services with
their credentials, the NATS members form one cluster from
``docs/deploy/nats/cluster.conf`` (which tests/e2e/test_cluster.py runs for
real), the proxy's upstreams are the replicas, every service has a health
check and a restart policy, and no secret is written in the file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.unit.settings_source import settings_source
from lrs.config import Settings, nats_servers
from lrs.runtime.nats import find_nats_server

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "docs" / "deploy" / "env.example"
CADDYFILE = ROOT / "docs" / "deploy" / "caddy" / "Caddyfile"
NATS_CONF = ROOT / "docs" / "deploy" / "nats" / "cluster.conf"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|CREDENTIAL|TOKEN|_KEY\b", re.IGNORECASE)


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation (the forms the file uses)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op is None:
            return value or ""
        if op.endswith("-"):
            return arg if empty else value  # type: ignore[return-value]
        if empty:
            raise MissingVariable(f"{name}: {arg}")
        return value  # type: ignore[return-value]

    return _REFERENCE.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _interpolated(node: object, env: dict[str, str]) -> object:
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def compose(env: dict[str, str] | None = None) -> dict:
    """The file as compose reads it: YAML first, then the values interpolated."""
    raw = yaml.safe_load(COMPOSE.read_text())
    return _interpolated(raw, env_example() if env is None else env)  # type: ignore[return-value]


def lrs_services(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if s.get("command") == ["serve"]}


def nats_members(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if str(s.get("image", "")).startswith("nats:")}


def test_secrets_come_from_outside_the_file() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())  # before interpolation: what is written in the file
    written: list[tuple[str, str]] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")
        else:
            written.append((path, str(node)))

    walk(raw, "")
    # A service's `secrets:` entries name Docker secrets declared at the top level,
    # whose contents come from a file beside the compose file (never written in it).
    declared = raw.get("secrets", {})
    for path, value in written:
        if re.fullmatch(r"secrets\[\d+\]", path.rsplit(".", 1)[-1]):
            assert set(declared.get(value, {})) == {"file"}, f"{path} names no file-backed secret: {value!r}"
            continue
        if _SECRET_NAME.search(path.rsplit(".", 1)[-1]):
            assert _REFERENCE.fullmatch(value), f"{path} is written in the file: {value!r}"
        url = urlsplit(value) if "://" in value else None
        if url is not None and url.password is not None:
            assert _REFERENCE.fullmatch(url.password), f"{path} has a password written in the URL"
    # Compose refuses to start without them; env.example names every one.
    with pytest.raises(MissingVariable, match="PASSWORD|CREDENTIAL"):
        compose({})
    required = {m["name"] for _, value in written for m in _REFERENCE.finditer(value) if m["op"] in (":?", "?")}
    assert required and required <= set(env_example())
    assert "change-me" not in COMPOSE.read_text()


def test_every_service_has_a_health_check_a_restart_policy_and_existing_dependencies() -> None:
    spec = compose()
    services = spec["services"]
    declared_volumes = set(spec.get("volumes") or {})
    for name, service in services.items():
        assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert condition["condition"] == "service_healthy", (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} mounts undeclared volume {source}"


def test_two_lrs_replicas_run_against_the_compose_postgres_and_nats_cluster() -> None:
    services = compose()["services"]
    replicas = lrs_services(services)
    assert len(replicas) >= 2
    config_source = settings_source()
    members = nats_members(services)
    postgres = services["postgres"]["environment"]
    for name, lrs in replicas.items():
        env = {key: str(value) for key, value in lrs["environment"].items()}
        assert [key for key in env if f'"{key}"' not in config_source] == [], name  # every name is read
        settings = Settings.from_env(env)
        assert not settings.embedded
        database = urlsplit(settings.database_url or "")
        assert (database.hostname, database.port, database.username, database.password, database.path) == (
            "postgres", 5432, postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], "/" + postgres["POSTGRES_DB"],
        )
        servers = [urlsplit(url) for url in nats_servers(settings.nats_url or "")]
        assert {(s.scheme, s.hostname, s.port) for s in servers} == {("nats", m, 4222) for m in members}
        for member in members.values():  # the user cluster.conf gives the service, with its password
            assert {(s.username, s.password) for s in servers} == {
                ("service", member["environment"]["NATS_SERVICE_PASSWORD"])
            }
        assert settings.nats_stream_replicas == len(members) == 3
        assert "LRS_HTTP_WORKERS" in env and settings.http_workers >= 2
        assert settings.http_host == "0.0.0.0"
        assert settings.bootstrap_credential and ":" in settings.bootstrap_credential
        assert set(lrs["depends_on"]) == {"postgres", *members}
        assert "ports" not in lrs, f"{name} is reached through the proxy only"
        assert str(settings.http_port) in " ".join(lrs["healthcheck"]["test"]) and "/ready" in " ".join(
            lrs["healthcheck"]["test"]
        )
        assert lrs["build"] == {"context": ".", "dockerfile": "docs/deploy/Dockerfile"}
        assert (ROOT / lrs["build"]["dockerfile"]).is_file()


def test_the_nats_members_form_one_jetstream_cluster_from_the_shipped_config() -> None:
    members = nats_members(compose()["services"])
    # Unquoted $NAME are variables ("$JS.API..." in quotes is a subject); # starts a comment.
    conf = re.sub(r'"[^"]*"|#[^\n]*', "", NATS_CONF.read_text())
    wanted = set(re.findall(r"\$([A-Z_][A-Z0-9_]*)", conf))
    names, stores = set(), set()
    for name, member in members.items():
        assert member["command"] == ["-c", "/etc/nats/cluster.conf"]
        assert "./docs/deploy/nats/cluster.conf:/etc/nats/cluster.conf:ro" in member["volumes"]
        env = {key: str(value) for key, value in member["environment"].items()}
        assert wanted <= set(env), f"{name} leaves {sorted(wanted - set(env))} of cluster.conf unset"
        names.add(env["NATS_SERVER_NAME"])
        stores.update(v for v in member["volumes"] if v.endswith(":/data"))
        route_port = int(env["NATS_CLUSTER_LISTEN"].rsplit(":", 1)[1])
        routes = {urlsplit(env[f"NATS_ROUTE_{i}"]) for i in range(1, len(members) + 1)}
        assert {(r.scheme, r.hostname, r.port) for r in routes} == {("nats-route", m, route_port) for m in members}
        assert env["NATS_LISTEN"].endswith(":4222")
        assert env["NATS_MONITOR_LISTEN"].endswith(":8222") and ":8222/healthz" in " ".join(member["healthcheck"]["test"])
    assert len(names) == len(stores) == len(members) == 3  # own name and own store each


def test_the_nats_image_runs_the_server_version_the_lock_installs() -> None:
    version = subprocess.run([str(find_nats_server()), "--version"], capture_output=True, text=True, check=True)
    installed = re.search(r"v(\d+\.\d+\.\d+)", version.stdout)
    assert installed is not None
    for name, member in nats_members(compose()["services"]).items():
        assert member["image"].split(":", 1)[1].split("-")[0] == installed[1], name


def test_the_proxy_terminates_tls_in_front_of_every_replica() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert "./docs/deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert any(port.rsplit(":", 1)[-1] == "443" for port in proxy["ports"])
    assert set(proxy["depends_on"]) == set(lrs_services(services))
    caddyfile = CADDYFILE.read_text()
    upstreams = re.search(r"^\s*reverse_proxy ([^{]+)\{", caddyfile, re.MULTILINE)
    assert upstreams is not None
    ports = {str(Settings.from_env({k: str(v) for k, v in s["environment"].items()}).http_port)
             for s in lrs_services(services).values()}
    assert set(upstreams[1].split()) == {f"{name}:{port}" for name in lrs_services(services) for port in ports}
    assert re.search(r"^\s*tls \{\$LRS_TLS", caddyfile, re.MULTILINE)
    assert re.search(r"^\s*health_uri /ready$", caddyfile, re.MULTILINE)
    for name in re.findall(r"\{\$([A-Z_]+)", caddyfile):
        assert name in proxy["environment"], f"the Caddyfile reads {name}, which compose does not pass"


def test_interpolation_follows_compose_rules() -> None:
    assert interpolate("${A:-x} ${B-y} ${C}", {"A": "", "B": ""}) == "x  "
    assert interpolate("$${A} ${A:?needed}", {"A": "1"}) == "${A} 1"
    with pytest.raises(MissingVariable, match="A: needed"):
        interpolate("${A:?needed}", {"A": ""})
