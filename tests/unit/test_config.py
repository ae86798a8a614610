"""Settings from the environment: defaults and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrs.config import ConfigError, Settings, nats_servers


def test_defaults():
    settings = Settings.from_env({"HOME": "/home/x"})
    assert settings.database_url is None and settings.nats_url is None
    assert settings.embedded
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("/home/x/.local/share/lrs")
    assert settings.relay_enabled


def test_personal_data_is_sealed_by_default_with_its_key_in_the_data_dir():
    settings = Settings.from_env({"HOME": "/home/x"})
    assert settings.seal_personal_data
    assert settings.privacy_master_key_file == Path("/home/x/.local/share/lrs/privacy-key")
    assert not Settings.from_env({"HOME": "/home/x", "LRS_SEAL_PERSONAL_DATA": "false"}).seal_personal_data


def test_an_external_postgresql_needs_the_privacy_key_file_named():
    external = {"HOME": "/home/x", "LRS_DATABASE_URL": "postgresql://db/lrs"}
    with pytest.raises(ConfigError, match="LRS_PRIVACY_KEY_FILE") as raised:
        Settings.from_env(external).privacy_master_key_file
    assert "\n" not in str(raised.value)
    named = Settings.from_env({**external, "LRS_PRIVACY_KEY_FILE": "/etc/lrs/privacy-key"})
    assert named.privacy_master_key_file == Path("/etc/lrs/privacy-key")
    # As the anchor key: a data dir that was given holds it.
    in_data_dir = Settings.from_env({**external, "LRS_DATA_DIR": "/srv/lrs"})
    assert in_data_dir.privacy_master_key_file == Path("/srv/lrs/privacy-key")


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


def test_stream_replicas_default_to_one_and_stay_within_what_jetstream_allows():
    assert Settings.from_env({}).nats_stream_replicas == 1
    assert Settings.from_env({"LRS_NATS_STREAM_REPLICAS": "3"}).nats_stream_replicas == 3
    for bad in ("0", "6", "three"):
        with pytest.raises(ConfigError, match="LRS_NATS_STREAM_REPLICAS"):
            Settings.from_env({"LRS_NATS_STREAM_REPLICAS": bad})


def test_nats_url_may_name_every_member_of_a_cluster():
    assert nats_servers("nats://127.0.0.1:4222") == ["nats://127.0.0.1:4222"]
    assert nats_servers("nats://a:4222, nats://b:4222,nats://c:4222,") == [
        "nats://a:4222", "nats://b:4222", "nats://c:4222",
    ]
    with pytest.raises(ConfigError, match="LRS_NATS_URL"):
        nats_servers(" , ")


def test_the_learner_cache_size_is_read_and_checked():
    assert Settings.from_env({"HOME": "/home/x"}).learner_cache_size == 250_000
    assert Settings.from_env({"HOME": "/home/x", "LRS_LEARNER_CACHE_SIZE": "500000"}).learner_cache_size == 500_000
    with pytest.raises(ConfigError, match="LRS_LEARNER_CACHE_SIZE"):
        Settings.from_env({"HOME": "/home/x", "LRS_LEARNER_CACHE_SIZE": "0"})
    assert Settings.from_env({"HOME": "/home/x", "LRS_LEARNER_CACHE_SIZE": "5000000"}).learner_cache_size == 5_000_000
    with pytest.raises(ConfigError, match="LRS_LEARNER_CACHE_SIZE must be <= 5000000"):
        Settings.from_env({"HOME": "/home/x", "LRS_LEARNER_CACHE_SIZE": "50000000"})
