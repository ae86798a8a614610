"""`.ci/run` runs exactly the README's test command, and that command installs
what the real-browser tests and the collation test need (they fail rather than skip without it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("Set up and run the tests"):]
    command = re.search(r"```sh\n(.+?)\n```", section, re.S).group(1)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [command]
    assert "apt-get install -y -qq chromium fonts-noto-core locales)" in command
    # the en_US.UTF-8 locale, generated when missing before the test server starts:
    # the audit digest's collation test builds a database of that collation.
    assert "(locale -a | grep -qix en_US.utf8 || localedef -i en_US -f UTF-8 en_US.UTF-8)" in command
    assert command.index("localedef") < command.index("pytest")
    # npm alone, and only where none is on the path: Node.js from elsewhere bundles
    # its own npm, which Debian's npm package conflicts with.
    assert "(command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm))" in command
    # three worker processes, sharing the tests as tests/conftest.py says (tests/README.md)
    assert command.endswith(".venv/bin/python -m pytest -q -n 3")
    # the dependencies compiled once at install (tests/conftest.py compiles the project's
    # own packages): every process a test starts would otherwise compile them again
    # wherever PYTHONDONTWRITEBYTECODE is set, about half a second of CPU each
    assert "uv sync --frozen --extra test --compile-bytecode && " in command


def test_the_run_command_installs_compiled_dependencies_and_compiles_the_project() -> None:
    from tests.conftest import PROJECT_PACKAGES

    readme = (ROOT / "README.md").read_text()
    # The project is installed editable, outside site-packages, so --compile-bytecode
    # leaves its own packages to be compiled by every process at every start where
    # PYTHONDONTWRITEBYTECODE is set: the run command compiles the packages the test
    # session compiles (tests/conftest.py), before the service starts.
    compile_project = f".venv/bin/python -m compileall -q {' '.join(PROJECT_PACKAGES)}"
    assert f"uv sync --frozen --compile-bytecode && {compile_project} && LRS_BOOTSTRAP_CREDENTIAL" in readme
