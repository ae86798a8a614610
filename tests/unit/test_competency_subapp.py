"""/competency is a sub-application (projections/http.py): the pool, the
settings, the catalogue and every other key live on the service, so its
handlers must read them through ``request.config_dict``.  ``request.app`` is
the sub-application there and has none of them: a handler reading it gets
None or a KeyError at run time, not at start."""

from __future__ import annotations

import ast
from pathlib import Path

HTTP = Path(__file__).resolve().parents[2] / "projections" / "http.py"


def app_key_reads(source: str) -> list[int]:
    """Lines where ``request.app`` is subscripted or asked with ``.get``/``in``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Subscript):
            target = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target = node.func.value
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            target = node.comparators[0]
        if isinstance(target, ast.Attribute) and target.attr == "app" and isinstance(target.value, ast.Name) \
                and target.value.id == "request":
            found.append(node.lineno)
    return found


def test_competency_handlers_read_the_service_keys_through_config_dict() -> None:
    assert app_key_reads(HTTP.read_text(encoding="utf-8")) == []


def test_the_check_sees_each_form() -> None:
    source = "def h(request):\n    a = request.app[K]\n    b = request.app.get(K)\n    c = K in request.app\n" \
             "    d = request.config_dict[K]\n"
    assert app_key_reads(source) == [2, 3, 4]
