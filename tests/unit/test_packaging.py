"""What pyproject.toml ships: every package of the tree, and every contract file as package data."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from lrs.contracts import SCHEMAS, files_named

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_tree_is_listed():
    found = {
        init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for top in ("lrs", "projections", "connectors")
        for init in (ROOT / top).rglob("__init__.py")
    }
    listed = set(SETUPTOOLS["packages"]) - {"lrs_schemas"}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed in pyproject.toml but not in the tree"


def test_every_contract_file_is_package_data():
    assert SETUPTOOLS["package-dir"] == {"lrs_schemas": "schemas"}
    patterns = SETUPTOOLS["package-data"]["lrs_schemas"]
    schemas = ROOT / "schemas"
    files = [p.relative_to(schemas).as_posix() for p in schemas.rglob("*")
             if p.is_file() and p.suffix != ".pyc" and p.name != "__init__.py"]
    assert files
    unshipped = [f for f in files if not any(fnmatch.fnmatchcase(f, pattern) for pattern in patterns)]
    assert unshipped == [], "add patterns for these to package-data in pyproject.toml"


def test_every_data_file_beside_the_code_is_package_data():
    patterns = SETUPTOOLS["package-data"]
    listed = set(SETUPTOOLS["packages"]) - {"lrs_schemas"}
    unshipped = []
    for top in ("lrs", "projections", "connectors"):
        for path in (ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            package_dir = next(p for p in path.parents if (p / "__init__.py").is_file())
            package = package_dir.relative_to(ROOT).as_posix().replace("/", ".")
            relative = path.relative_to(package_dir).as_posix()
            wanted = [*patterns.get("*", []), *patterns.get(package, [])]
            if package not in listed or not any(fnmatch.fnmatchcase(relative, w) for w in wanted):
                unshipped.append(path.relative_to(ROOT).as_posix())
    assert unshipped == [], "add patterns for these to package-data in pyproject.toml"


def test_the_contracts_are_read_from_the_schemas_directory():
    # In the source tree (editable install) the package is the directory itself.
    assert Path(str(SCHEMAS)).resolve() == (ROOT / "schemas").resolve()
    assert [f.name for f in files_named(SCHEMAS / "postgres", ".sql")] == sorted(
        p.name for p in (ROOT / "schemas" / "postgres").glob("*.sql"))
