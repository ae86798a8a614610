"""A replay's py-spy samples cut into its pieces, per process.

Reads what ``py-spy record --subprocesses --format raw`` wrote of one
``bench/replay_measure.py`` run (the replaying process and its forked
worker) and gives, for each process, the share of its samples inside
``projections.replay.replay`` that each piece took: a sample goes to the
innermost frame that names a piece (the state's encode inside the COPY's
row generator is the encode's).  Multiply a share by the process's CPU µs
an event (``projection_ab.py``'s ``python_cpu_us_per_event`` and
``worker_cpu_us_per_event``) to spread them over the pieces.  Samples of a
task the loop runs outside ``replay``'s stack (the replaying process's next
page read ahead) and asyncpg's Cython, which py-spy shows as the nearest
Python frame, are where they fall.

    uvx py-spy record --subprocesses -r 200 --format raw -o F -- \\
        .venv/bin/python bench/replay_measure.py --database-url URL
    .venv/bin/python bench/replay_pyspy_shares.py F [F2 ...]
"""

from __future__ import annotations

import argparse
import collections
import sys

# (text of a frame, the piece it names); the first that matches, from the innermost frame out.
PIECES = [
    ("normalise_timestamp", "evidence: normalise_timestamp"),
    ("evidence_of", "evidence: evidence_of (the rest)"),
    ("evidence_from", "evidence: evidence_of (the rest)"),  # a hinted statement's evidence, built from its hint
    ("_evidence_hint", "hints: built by the judge (EvidenceHint)"),
    ("open_payload", "open the stored payload (zstd)"),
    ("decode_view", "decode the JSON (msgspec view)"),
    ("judge (", "judge (verb, alignment, learner)"),
    ("encode_state", "encode the state (codec)"),
    ("LogRebuild.fold", "fold (evolve_many)"),
    ("state_rows", "competency and certification rows"),
    ("certification_rows", "competency and certification rows"),
    ("LogRebuild.take", "keep and route in log order"),
    ("route (", "keep and route in log order"),
    ("keep (", "keep and route in log order"),
    ("HintSender", "hints: sent (thread)"),
    ("hear", "hints: received and matched"),
    ("receive", "hints: received and matched"),
    ("wait_readable", "hints: received and matched"),
    ("copy_records_to_table", "COPY into the tables (asyncpg)"),
    ("_fetch_page", "read pages (asyncpg fetch)"),
    ("_log_pages", "read pages (asyncpg fetch)"),
    ("rebuild_links", "identity links"),
    ("suspects", "ids owned twice"),
    ("settle", "ids owned twice"),
    ("_release", "free what was read"),
]


def shares(lines: list[str]) -> dict[str, collections.Counter[str]]:
    """Samples by process ("replaying" or "worker") and piece."""
    found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or "replay (projections/replay.py" not in stack:
            continue
        frames = stack.split(";")
        process = "replaying" if sum(f.startswith("process ") for f in frames) == 1 else "worker"
        piece = next((name for frame in reversed(frames) for key, name in PIECES if key in frame), None)
        if piece is None:
            piece = "the read loop's own" if "_read_all" in stack else "the rest (loop, waits, swap)"
        found[process][piece] += int(count)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", nargs="+", help="py-spy --format raw files")
    args = parser.parse_args(argv)
    for path in args.raw:
        with open(path) as f:
            found = shares(f.readlines())
        for process, pieces in sorted(found.items()):
            total = sum(pieces.values())
            print(f"{path}: {process} process, {total} samples in replay")
            for piece, samples in pieces.most_common():
                print(f"  {100 * samples / total:5.1f} %  {piece}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
