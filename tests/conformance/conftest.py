"""Conformance cases run against the in-process app, once storing personal
data in clear and once sealed (LRS_SEAL_PERSONAL_DATA, docs/privacy.md): the
xAPI behaviour (statement equality, agent filters, related_agents, voiding,
documents) must not depend on it."""

from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from tests.e2e.conftest import app_client


@pytest.fixture(params=["clear", "sealed"])
async def client(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, light_secret_hashing: int
) -> AsyncIterator[TestClient]:
    # light_secret_hashing: as tests/e2e's client (tests/conftest.py says why); the
    # production cost is pinned in tests/unit/test_auth.py and tests/e2e/test_abuse_api.py.
    extra = {"seal_personal_data": request.param == "sealed", "privacy_key_file": tmp_path / "privacy-key"}
    async with app_client(database_url, tmp_path, **extra) as test_client:
        yield test_client
