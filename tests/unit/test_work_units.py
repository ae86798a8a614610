"""How `-n 3` shares the tests among its workers (tests/conftest.py, ``work_unit``):
a module is one unit; the Node directories are one unit each (one `npm ci` into
a shared node_modules at a time); the whole-process scenarios are one unit, so
that none runs beside another, and that unit is scheduled first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _SCENARIO_MODULES, SCENARIOS, work_unit

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_module_exists() -> None:
    # a renamed module would otherwise leave the unit silently and run beside the others
    assert sorted(m for m in _SCENARIO_MODULES if not (ROOT / m).is_file()) == []


def test_the_tests_that_judge_wall_time_against_the_machine_are_scenarios() -> None:
    judged = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "e2e").glob("test_*.py")
                    if "machine_stall" in p.read_text())
    assert judged == ["tests/e2e/test_cluster.py"]
    assert all(work_unit(f"{m}::test_x") == SCENARIOS for m in judged)


def test_a_module_is_a_unit_and_a_node_directory_is_one_unit() -> None:
    assert work_unit("tests/unit/test_auth.py::test_a[1]") == work_unit("tests/unit/test_auth.py::test_b")
    assert work_unit("tests/unit/test_auth.py::test_a") != work_unit("tests/unit/test_config.py::test_a")
    assert work_unit("tests/browser/test_cors_browser.py::t") == work_unit("tests/browser/test_console_browser.py::t")
    assert work_unit("tests/clients/test_tincan.py::t") == work_unit("tests/clients/test_node_clients.py::t")
    assert work_unit("tests/clients/test_tincan.py::t") != work_unit("tests/browser/test_cors_browser.py::t")
    assert work_unit("tests/e2e/test_cluster.py::t") == work_unit("tests/e2e/test_durability.py::t[2]") == SCENARIOS


def test_the_scheduler_takes_the_units_in_collection_order() -> None:
    from tests.conftest import WorkUnitScheduling

    class Option:
        loadscopereorder = True
        maxworkerrestart = None
        numprocesses = 3
        tx = ["3*popen"]

    class Config:
        option = Option()

        def getvalue(self, name: str) -> object:
            return getattr(self.option, name, None)

        def getoption(self, name: str, default: object = None) -> object:
            return getattr(self.option, name, default)

    config = Config()
    scheduler = WorkUnitScheduling(config)  # type: ignore[arg-type]
    assert config.option.loadscopereorder is False
    assert scheduler._split_scope("tests/e2e/test_supervision.py::t") == SCENARIOS


@pytest.mark.parametrize("nodeid", ["tests/e2e/test_cli.py::t[lrs]", "tests/integration/test_wheel.py::t"])
def test_a_module_with_module_fixtures_stays_whole(nodeid: str) -> None:
    assert work_unit(nodeid) == nodeid.split("::")[0]
