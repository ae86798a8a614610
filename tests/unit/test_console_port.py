"""The competency projection gives the console everything its port declares
(lrs/console/ports.py), with the same parameters: a method renamed or a
parameter dropped on either side fails here, not on a page at run time."""

from __future__ import annotations

import inspect

from lrs.console.ports import ConsoleCompetency
from projections.console import CompetencyConsole


def _members(protocol: type) -> dict[str, object]:
    found: dict[str, object] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object,) or klass.__name__ in ("Protocol", "Generic"):
            continue
        found.update({name: value for name, value in vars(klass).items() if not name.startswith("_")})
        found.update({name: None for name in getattr(klass, "__annotations__", {}) if not name.startswith("_")})
    return found


def test_the_projection_implements_every_member_of_the_console_port() -> None:
    members = _members(ConsoleCompetency)
    assert {"catalog", "unit_report", "request_retry", "query_errors", "name"} <= set(members)
    implementation = CompetencyConsole()
    for name, declared in members.items():
        assert hasattr(implementation, name), name
        if callable(declared):
            given = getattr(implementation, name)
            assert inspect.iscoroutinefunction(given) == inspect.iscoroutinefunction(declared), name
            wanted = [(p.name, p.kind) for p in inspect.signature(declared).parameters.values()]
            got = [(p.name, p.kind) for p in inspect.signature(getattr(CompetencyConsole, name)).parameters.values()]
            assert got == wanted, name


def test_the_query_errors_carry_a_status_and_a_message() -> None:
    for error in CompetencyConsole.query_errors:
        raised = error(404, "no such unit")
        assert (raised.status, raised.message) == (404, "no such unit")  # type: ignore[attr-defined]
