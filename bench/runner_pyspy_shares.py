"""A running ``lrs project``'s py-spy samples cut into the pieces of its work.

Reads what ``py-spy record --format raw`` wrote of the ``lrs project``
process during a ``bench/projection.py --lag-only`` run and gives the share
of its samples each piece took: a sample goes to the innermost frame that
names a piece (the state's encode inside ``_write`` is the encode's; a
young collection set off by an allocation is where it fell, py-spy not
showing the collector without ``--native``).  With ``--us-per-event`` (the
run's ``cpu_us_per_statement.projection``: every statement is one event)
each share is also given in µs an event.

    uvx py-spy record -p PID -r 200 -d 18 -f raw -o F
    .venv/bin/python bench/runner_pyspy_shares.py F --us-per-event 130.1
"""

from __future__ import annotations

import argparse
import collections

# (text of a frame, the piece it names); from the innermost frame out, the first that matches.
PIECES = [
    ("parse_plain_headers", "read: header parse"),
    ("layout_parse", "read: header parse"),
    ("process_headers", "read: header parse"),
    ("_build_message", "read: Msg built"),
    ("event_from_message", "read: LogEvent from the message"),
    ("PullConsumer._received", "read: dispatch (queue, task, callback)"),
    ("_wait_for_msgs", "read: dispatch (queue, task, callback)"),
    ("Queue.", "read: dispatch (queue, task, callback)"),
    ("process_msg", "read: dispatch (queue, task, callback)"),
    ("Parser.parse", "read: nats-py's protocol parser"),
    ("TcpTransport", "read: socket reads and writes"),
    ("StreamReader", "read: socket reads and writes"),
    ("StreamWriter", "read: socket reads and writes"),
    ("_read_loop", "read: socket reads and writes"),
    ("_flusher", "read: socket reads and writes"),
    ("PullConsumer.fetch", "fetch requests"),
    ("PullConsumer._request", "fetch requests"),
    ("ack_all", "acknowledgements"),
    ("Msg.ack", "acknowledgements"),
    ("Msg.nak", "acknowledgements"),
    ("encode_state", "state encode"),
    ("evolve_many", "fold (evolve_many)"),
    ("interpret_stored", "interpret_stored"),
    ("_rewrite", "changed rows"),
    ("state_row", "changed rows"),
    ("certification_row", "changed rows"),
    ("_earned_changes", "earned-certification counts"),
    ("refusal", "log check (position, hash)"),
    ("hashes_at", "log check (position, hash)"),
    ("BatchApplier._checked", "log check (position, hash)"),
    ("asyncpg/", "asyncpg (statements, COPY, protocol)"),
    ("CompetencyProjection.committed", "commit bookkeeping (cache, freeing replaced states)"),
    ("CheckpointStore", "commit bookkeeping (cache, freeing replaced states)"),
    ("apply_certification_changes", "asyncpg (statements, COPY, protocol)"),
    ("persons_of", "asyncpg (statements, COPY, protocol)"),
    ("CompetencyProjection.", "routing and the rest of apply"),
    ("_columns", "routing and the rest of apply"),
    ("BatchApplier.", "routing and the rest of apply"),
    ("jetstream_loop.py", "the pull loop (_handle, _pull_batches)"),
    ("Runner.run", "event loop (uvloop) itself"),
]


def piece_of(frames: list[str]) -> str:
    """The piece of the innermost frame that names one."""
    for frame in reversed(frames):
        for text, name in PIECES:
            if text in frame:
                return name
    return "other"


def shares(path: str) -> tuple[int, collections.Counter[str]]:
    counts: collections.Counter[str] = collections.Counter()
    with open(path) as lines:
        for line in lines:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            counts[piece_of(stack.split(";"))] += int(n)
    return sum(counts.values()), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", nargs="+")
    parser.add_argument("--us-per-event", type=float, action="append", default=[],
                        help="the projection's CPU µs an event in each run, in the order of the files")
    args = parser.parse_args()
    for i, path in enumerate(args.raw):
        total, counts = shares(path)
        us = args.us_per_event[i] if i < len(args.us_per_event) else None
        print(f"{path}: {total} samples" + (f", {us} µs an event" if us else ""))
        for piece, n in counts.most_common():
            share = n / total
            print(f"  {100 * share:5.1f} %" + (f"  {share * us:6.1f} µs" if us else "") + f"  {piece}")


if __name__ == "__main__":
    main()
