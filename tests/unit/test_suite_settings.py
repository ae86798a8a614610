"""What tests/conftest.py sets up for every test: property tests without timings,
and the project's packages compiled before any test starts a process."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from hypothesis import HealthCheck, settings

from tests.conftest import PROJECT_PACKAGES


def test_property_tests_are_not_timed() -> None:
    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check


def test_the_project_packages_are_compiled_before_the_tests_run() -> None:
    for package in PROJECT_PACKAGES:
        sources = sorted(Path(importlib.import_module(package).__file__).parent.rglob("*.py"))
        assert sources, package
        missing = [s for s in sources if not Path(importlib.util.cache_from_source(str(s))).is_file()]
        assert not missing, missing[:5]
