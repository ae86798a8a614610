"""docker-compose.yml wires the service to its PostgreSQL and NATS as the configuration reads them.

No Docker engine runs here, so this checks the file against the code: the
variables it sets are ones ``Settings.from_env`` reads, they name the other
services with their credentials, NATS runs with JetStream, and the port the
service listens on is the one published.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from lrs import config
from lrs.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_the_service_against_its_own_postgres_and_nats() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    lrs, postgres, nats = services["lrs"], services["postgres"], services["nats"]
    env = {name: str(value) for name, value in lrs["environment"].items()}
    config_source = Path(config.__file__).read_text()
    assert [name for name in env if f'"{name}"' not in config_source] == []  # every name is read

    settings = Settings.from_env(env)
    assert not settings.embedded
    database = urlsplit(settings.database_url or "")
    db_env = postgres["environment"]
    assert (database.hostname, database.port, database.username, database.password, database.path) == (
        "postgres", 5432, db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], "/" + db_env["POSTGRES_DB"],
    )
    bus = urlsplit(settings.nats_url or "")
    assert (bus.scheme, bus.hostname, bus.port) == ("nats", "nats", 4222)
    assert "-js" in nats["command"]

    assert "lrs serve" in lrs["command"]
    assert settings.http_host == "0.0.0.0"
    assert [port.rsplit(":", 1)[1] for port in lrs["ports"]] == [str(settings.http_port)]
    assert settings.bootstrap_credential and ":" in settings.bootstrap_credential
    assert lrs["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "nats" in lrs["depends_on"]
