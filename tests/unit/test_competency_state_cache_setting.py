"""LRS_COMPETENCY_STATE_CACHE_SIZE: how many learners' states the competency
projection keeps decoded between batches, read and checked at start, and
given to the projection the service builds."""

from __future__ import annotations

from pathlib import Path

import pytest

import inspect

from lrs import config
from lrs.config import ConfigError, Settings
from lrs.service import create_app
from projections.competency.catalog import load_catalog
from projections.competency.model import LearnerState
from projections.competency.store import CompetencyProjection
from projections.http import BUILD_PROJECTION

NAME = "LRS_COMPETENCY_STATE_CACHE_SIZE"


def test_the_setting_is_read_with_its_default_and_bounds() -> None:
    assert Settings.from_env({"HOME": "/home/x"}).competency_state_cache_size == 20_000
    assert Settings.from_env({"HOME": "/home/x", NAME: ""}).competency_state_cache_size == 20_000
    assert Settings.from_env({"HOME": "/home/x", NAME: "0"}).competency_state_cache_size == 0  # no cache
    assert Settings.from_env({"HOME": "/home/x", NAME: "1000000"}).competency_state_cache_size == 1_000_000


@pytest.mark.parametrize(("value", "message"), [
    ("20k", f"{NAME} must be an integer, got '20k'"),
    ("-1", f"{NAME} must be >= 0, got -1"),
    ("1000001", f"{NAME} must be <= 1000000, got 1000001"),
])
def test_a_bad_value_is_refused_naming_the_setting(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"HOME": "/home/x", NAME: value})
    assert str(refused.value) == message


@pytest.mark.parametrize("size", [0, 3])
def test_the_service_builds_its_projection_with_the_setting(tmp_path: Path, size: int) -> None:
    settings = Settings(database_url="postgresql://127.0.0.1:1/unused", nats_url=None, data_dir=tmp_path,
                        seal_personal_data=False, competency_state_cache_size=size)
    app = create_app(settings, database_url=settings.database_url or "", nats_url=None)
    projection = app[BUILD_PROJECTION](load_catalog())
    # a transaction that changed five learners commits: the most recent `size` stay cached
    projection.begin(0, 0)
    keys = [("default", f"mbox:mailto:{n}@example.org") for n in range(5)]
    projection._pending.update({key: LearnerState(learner=key[1]) for key in keys})
    projection.committed(1)
    assert list(projection._cache) == keys[5 - size:]


def test_a_projection_built_without_a_size_takes_the_settings_default_from_its_one_source() -> None:
    # The same object, not an equal literal: a default written twice drifts
    # apart when one is changed (benches and replays build it without a size).
    default = inspect.signature(CompetencyProjection).parameters["cache_size"].default
    assert default is config.COMPETENCY_STATE_CACHE_SIZE
    assert CompetencyProjection(load_catalog())._cache_size == Settings().competency_state_cache_size
