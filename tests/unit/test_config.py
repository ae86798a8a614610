"""Settings from the environment: defaults and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrs.config import ConfigError, Settings


def test_defaults():
    settings = Settings.from_env({"HOME": "/home/x"})
    assert settings.database_url is None and settings.nats_url is None
    assert settings.embedded
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("/home/x/.local/share/lrs")
    assert settings.relay_enabled


def test_values_from_environment():
    settings = Settings.from_env(
        {
            "LRS_DATABASE_URL": "postgresql://db/lrs",
            "LRS_NATS_URL": "nats://127.0.0.1:4222",
            "LRS_HTTP_PORT": "9000",
            "LRS_DATA_DIR": "/srv/lrs",
            "LRS_RELAY_ENABLED": "false",
        }
    )
    assert not settings.embedded
    assert settings.http_port == 9000
    assert settings.data_dir == Path("/srv/lrs")
    assert settings.relay_enabled is False
    assert settings.authority_home == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("name", "value"), [("LRS_HTTP_PORT", "eighty"), ("LRS_RELAY_ENABLED", "maybe"), ("LRS_DB_POOL_SIZE", "1")]
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
