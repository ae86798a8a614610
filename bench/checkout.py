"""The checkout a piece bench measures (``--repo``): its ``lrs`` package on the
import path, checked to be the one imported, and its commit for the record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path


def use_checkout(repo: str) -> str:
    """Put ``repo`` first on the import path, import its ``lrs`` (refusing
    another one already imported) and return its short commit ("" outside git)."""
    sys.path.insert(0, repo)
    import lrs

    assert Path(lrs.__file__).resolve().is_relative_to(Path(repo).resolve()), lrs.__file__
    return subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()


def piece_record(benchmark: str, repo: str) -> dict:
    """The head of a piece bench's record for ``repo`` (:func:`use_checkout`
    is called): what, when, which checkout and commit, the load before."""
    commit = use_checkout(repo)
    return {
        "benchmark": benchmark,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repo": repo,
        "commit": commit,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "unit": "µs of CPU per statement (process_time, best of rounds)",
    }


def emit_record(record: dict, output: str | None) -> None:
    """Print ``record`` as one JSON line, and append it to ``output`` when given."""
    line = json.dumps(record, ensure_ascii=False)
    print(line)
    if output:
        with open(output, "a") as out:
            out.write(line + "\n")
