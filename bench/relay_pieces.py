"""CPU per event of the pure pieces of the relay process (``lrs relay``).

``bench/ingest.py --start-service`` gives the relay's whole CPU per statement;
this one splits its own Python work, with the real functions, on the ingest
bench's statements laid out by the group commit (``bench/group_insert_encoding.py``):

* ``open payload``: the zstd payload of a row back to its canonical JSON;
* ``rows to records``: the log reader's rows (asyncpg Records, made here
  with the columns of its query) turned into EventRecords, the payload
  opened as above included (``lrs.store.log_reader._record``);
* ``frames``: the HPUB frames of a batch's plain publishes, as one run of
  bytes (``EventBatch.max_data_length`` and ``EventBatch.wire`` where it
  exists, else ``event_message`` and ``hpub_frame`` per event and a join);
* ``stored texts``: each event's ``stored`` formatted once for the frames
  and the check (``stored_texts_of``; before it, each of the two formatted
  it within its own piece);
* ``anchor check``: the anchor writer's check of the chain on the relayed
  batch (``verify_chain``: the hash of every event again).

What it does not hold: asyncpg decoding the rows, the socket, nats-py's
flusher and the event loop.  Best of ``--rounds`` of ``time.process_time``;
``--repo`` imports another checkout's ``lrs``::

    python bench/relay_pieces.py
    python bench/relay_pieces.py --repo /path/to/main
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent


def run(groups: int, rounds: int) -> dict[str, float]:
    from group_insert_encoding import _plans
    from lrs import eventlog
    from lrs.event_contract import event_message
    from lrs.eventlog import StoredFormatter, verify_chain
    from lrs.nats.bus import hpub_frame
    from lrs.payload_codec import open_payload, store_payloads

    records = [new.event for plan in _plans(groups, 100) for new in plan.new]
    stored = store_payloads([r.payload for r in records])
    shared_texts = getattr(eventlog, "stored_texts_of", None)
    texts: list[str] = []
    try:
        from lrs.nats.event_frames import EventBatch

        # As lrs.nats.bus._publish_plain uses a batch: its longest data, then its frames.
        if shared_texts is not None:  # the stored texts are formatted once, beside the pieces
            def frames() -> bytes:
                batch = EventBatch(records, texts, 1 << 20)
                batch.max_data_length()
                return batch.wire()
        else:
            def frames() -> bytes:
                batch = EventBatch(records, StoredFormatter(), 1 << 20)
                batch.max_data_length()
                return batch.wire()
    except ImportError:
        def frames() -> bytes:
            formatter = StoredFormatter()
            return b"".join([hpub_frame(event_message(r, formatter, 1 << 20)) for r in records])

    def stored_text() -> None:
        texts[:] = shared_texts(records)

    def anchor_check() -> None:
        if shared_texts is not None:
            verify_chain(records, prev_position=0, prev_hash=b"\0" * 32, stored_texts=texts)
        else:
            verify_chain(records, prev_position=0, prev_hash=b"\0" * 32)

    pieces: dict[str, Callable[[], object]] = {"open payload": lambda: [open_payload(s) for s in stored]}
    from asyncpg.protocol.protocol import _create_record

    from lrs.store import log_reader

    columns = ["position", "event_id", "tenant", "event_type", "statement_id", "stored", "payload", "prev_hash", "hash"]
    mapping = {name: i for i, name in enumerate(columns)}
    rows = [_create_record(mapping, tuple(data if name == "payload" else getattr(r, name) for name in columns))
            for r, data in zip(records, stored)]
    pieces["rows to records"] = lambda: [log_reader._record(row) for row in rows]
    if shared_texts is not None:
        pieces["stored texts"] = stored_text
    pieces["frames"] = frames
    pieces["anchor check"] = anchor_check
    out = {}
    for name, fn in pieces.items():
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            fn()
            best = min(best, time.process_time() - started)
        out[name] = round(best / len(records) * 1e6, 2)
    # "rows to records" opens the payloads too: the sum counts that once.
    out["sum"] = round(sum(v for k, v in out.items() if not (k == "open payload" and "rows to records" in out)), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is measured")
    parser.add_argument("--groups", type=int, default=20, help="groups of 100 statements (default 20)")
    parser.add_argument("--rounds", type=int, default=7, help="timings per piece; the best is kept (default 7)")
    parser.add_argument("--output", help="result file (default: bench/results/relay-pieces-<time>.json)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from checkout import use_checkout

    commit = use_checkout(args.repo)
    load_before = [round(x, 2) for x in os.getloadavg()]
    record = {
        "benchmark": "relay-pieces",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repo": args.repo,
        "commit": commit,
        "load_average_before": load_before,
        "unit": "µs of CPU per event (process_time, best of rounds)",
        "pieces": run(args.groups, args.rounds),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(record))
    if not args.no_save:
        out = Path(args.output or HERE / "results" / f"relay-pieces-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json")
        out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
