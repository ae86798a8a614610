"""Which features of the xAPI Structs the typed decode pays for, on the
ingest bench's statements at batch 100 (µs of CPU a statement).

The checkout's ``lrs`` package (``--repo``) is copied four times into a
scratch directory and its ``lrs/xapi`` changed in each copy:

* ``as is``: unchanged;
* ``no hooks``: every ``__post_init__`` removed (the rules in Python);
* ``no patterns``: every ``Meta(pattern=...)`` made a plain ``Meta`` (the
  regular expressions msgspec tests while decoding);
* ``neither``: both.

Each copy is timed in its own process, the copies in turn for ``--rounds``
rounds: the typed decode (``lrs.xapi.statement._batch_decoder``) and
msgspec's plain decode of the same bodies, best of 9 each.  The copies only
serve to time: they accept what the service refuses.  What a feature costs
is ``as is`` minus the copy without it::

    python bench/typed_decode_parts.py --rounds 3 --output bench/results/typed-decode-parts-<label>.jsonl
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {"as is": (False, False), "no hooks": (True, False), "no patterns": (False, True), "neither": (True, True)}
_HOOK = re.compile(r"\n    def __post_init__\(self\) -> None:\n(?:        .*\n|\n)*")
_PATTERN = re.compile(r"Meta\(pattern=[A-Z_]+, ")

_TIMER = r"""
import sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])
import ingest, msgspec
from lrs.xapi.statement import _batch_decoder
import lrs
assert lrs.__file__.startswith(sys.argv[1]), lrs.__file__
bodies = [ingest._body(100, [i * 100]) for i in range(40)]
def best(fn):
    out = float("inf")
    for _ in range(9):
        started = time.process_time()
        for b in bodies:
            fn(b)
        out = min(out, time.process_time() - started)
    return round(out / 4000 * 1e6, 3)
print(best(_batch_decoder.decode), best(msgspec.json.decode))
"""


def make_copy(repo: Path, into: Path, no_hooks: bool, no_patterns: bool) -> None:
    shutil.copytree(repo / "lrs", into / "lrs", ignore=shutil.ignore_patterns("__pycache__"))
    for module in (into / "lrs" / "xapi").glob("*.py"):
        text = module.read_text()
        if no_hooks:
            text = _HOOK.sub("\n", text)
        if no_patterns:
            text = _PATTERN.sub("Meta(", text)
        module.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is copied")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", help="append one JSON line a round to this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from checkout import emit_record

    repo = Path(args.repo).resolve()
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="typed-decode-parts-") as scratch:
        copies = {}
        for i, (name, (no_hooks, no_patterns)) in enumerate(VARIANTS.items()):
            copies[name] = Path(scratch) / str(i)
            make_copy(repo, copies[name], no_hooks, no_patterns)
        for round_ in range(args.rounds):
            record = {"benchmark": "typed-decode-parts", "repo": str(repo), "commit": commit, "round": round_ + 1,
                      "load_average_before": [round(x, 2) for x in os.getloadavg()],
                      "unit": "µs of CPU per statement (process_time, best of 9), typed / plain decode"}
            for name, copy in copies.items():
                out = subprocess.run([sys.executable, "-c", _TIMER, str(copy), str(HERE)], capture_output=True,
                                     text=True, check=True).stdout.split()
                record[name] = {"typed": float(out[0]), "plain": float(out[1])}
            emit_record(record, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
