"""The import rules that keep the packages apart, read from the source with ``ast``.

1. Pure modules (the xAPI rules, ingest, the event log's hashing, batching,
   documents, the competency and roster rules, the connectors' mappings)
   import no driver: not asyncpg, nats or aiohttp, not even through another
   module of the project.
2. ``connectors`` import nothing from ``lrs`` but the event contract and the
   payload codec (how the events table keeps a payload).
3. No module under ``lrs/`` imports ``projections`` or ``connectors``, except
   the composition root (lrs/service.py), which plugs them in.

Every ``import`` counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lrs", "projections", "connectors")
DRIVERS = ("asyncpg", "nats", "aiohttp")

PURE = (
    "lrs.xapi", "lrs.xapi.*", "lrs.ingest", "lrs.ingest.*", "lrs.eventlog", "lrs.batching",
    "lrs.documents", "lrs.documents.*", "lrs.console.ports", "lrs.payload_codec", "lrs.chain_walk",
    "projections.competency.policy", "projections.competency.judgement", "projections.competency.mastery",
    "projections.competency.learner_fold", "projections.competency.model", "projections.competency.frameworks",
    "projections.competency.catalog", "projections.competency.codec", "projections.competency.rebuild",
    "projections.competency.standing", "projections.competency.targets", "projections.competency.rows",
    "projections.units.roster", "projections.units.history", "projections.units.erased", "projections.units.sql",
    "projections.competency.share_judging", "lrs.privacy.sealed_text", "lrs.privacy.statement_agents",
    "lrs.privacy.data_key", "lrs.privacy.seal", "lrs.privacy.opening", "lrs.privacy.statement_sealer",
    "connectors.*.mapping", "connectors.openedx.vocabulary",
)

# What connectors may import from lrs: the relayed-event contract, the
# stored form of a payload in the events table (docs/contracts.md), and how a
# NATS client turns the documented LRS_NATS_* settings into connection options
# (lrs forward reads the same variables as every other NATS client), and the
# names of the stream and of the consumers each role owns (`lrs forward remove`
# must never delete a projection's consumer), and how a database or NATS URL
# is shown without its passwords (as the LRS shows it), and the argument
# types every command line shares (lrs.cli_arguments); nothing else.
CONNECTOR_CONTRACT: tuple[str, ...] = (
    "lrs.event_contract", "lrs.payload_codec", "lrs.nats.access", "lrs.nats.permissions", "lrs.url_redaction",
    "lrs.cli_arguments",
)

COMPOSITION_ROOT = "lrs.service"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: tuple[tuple[str, bool], ...]  # (module imported, at module level)


def modules(root: Path) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            is_package = parts[-1] == "__init__"
            found[name] = Module(name, path, tuple(_imports(path, name, is_package)))
    return found


def _imports(path: Path, name: str, is_package: bool) -> list[tuple[str, bool]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top = {id(node) for node in tree.body}
    top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in node.body}  # TYPE_CHECKING, guards
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, id(node) in top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = ".".join(part for part in (package, base) if part)
            out.append((base, id(node) in top))
            out.extend((f"{base}.{alias.name}", id(node) in top) for alias in node.names)
    return out


def _within(imported: str, prefix: str) -> bool:
    return imported == prefix or imported.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    found = modules(root)
    problems: list[str] = []

    # 1. pure modules: no driver, directly or through the project's modules (imported at module level).
    def drivers_of(name: str, seen: set[str]) -> list[str]:
        if name in seen or name not in found:
            return []
        seen.add(name)
        reached = []
        for imported, top in found[name].imports:
            if any(_within(imported, d) for d in DRIVERS):
                reached.append(f"{name} imports {imported}")
            elif top and imported in found:
                reached.extend(drivers_of(imported, seen))
        return reached

    for name in found:
        if any(fnmatch(name, pattern) for pattern in PURE):
            for chain in drivers_of(name, set()):
                problems.append(f"pure module {name}: {chain}")

    for module in found.values():
        for imported, _ in module.imports:
            # 2. connectors use only the event contract from lrs.
            if _within(module.name, "connectors") and _within(imported, "lrs"):
                if not any(_within(imported, allowed) for allowed in CONNECTOR_CONTRACT):
                    problems.append(f"connector {module.name} imports {imported}")
            # 3. lrs imports no plugin except in the composition root.
            if _within(module.name, "lrs") and module.name != COMPOSITION_ROOT:
                if _within(imported, "projections") or _within(imported, "connectors"):
                    problems.append(f"{module.name} imports {imported} (only {COMPOSITION_ROOT} may)")
    return sorted(set(problems))


def test_the_code_keeps_the_import_rules() -> None:
    assert violations(ROOT) == []


def test_each_rule_catches_its_violation(tmp_path: Path) -> None:
    def write(relative: str, text: str) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    for package in PACKAGES:
        write(f"{package}/__init__.py", "")
    write("lrs/xapi/__init__.py", "")
    write("lrs/xapi/rules.py", "from lrs.helpers import helper\n")  # pure, reaches a driver through a helper
    write("lrs/helpers.py", "import asyncpg\n")
    write("lrs/ingest/__init__.py", "")
    write("lrs/ingest/late.py", "def f():\n    from aiohttp import web\n")  # inside a function still counts
    write("lrs/http/__init__.py", "")
    write("lrs/http/app.py", "import projections.http\n")
    write("lrs/service.py", "import projections.http\nimport connectors.cli\n")  # the root may
    write("lrs/store.py", "from ..connectors import cli\n")  # relative, out of the package: still seen
    write("connectors/cli.py", "from lrs.config import Settings\n")
    write("projections/http.py", "from aiohttp import web\n")  # not pure: drivers are fine
    assert violations(tmp_path) == sorted([
        "pure module lrs.xapi.rules: lrs.helpers imports asyncpg",
        "pure module lrs.ingest.late: lrs.ingest.late imports aiohttp",
        "pure module lrs.ingest.late: lrs.ingest.late imports aiohttp.web",
        "lrs.http.app imports projections.http (only lrs.service may)",
        "connector connectors.cli imports lrs.config",
        "connector connectors.cli imports lrs.config.Settings",
        "lrs.store imports connectors (only lrs.service may)",
        "lrs.store imports connectors.cli (only lrs.service may)",
    ])
