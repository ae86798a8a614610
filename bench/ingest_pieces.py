"""CPU per statement of each pure piece of an HTTP worker's ingest path.

``bench/ingest.py --start-service`` gives the CPU of every process per
statement (HTTP workers, PostgreSQL, nats-server, relay); this one splits the
HTTP worker's own Python work into its pieces, with the real functions, on
the ingest bench's statements, at batch 100 (per statement) and batch 1 (per
request of one statement):

* ``parse``: msgspec decode into the xAPI Structs (IRI and other patterns,
  per-type rules), to plain JSON values, the duplicate-key and depth check;
* ``prepare``: ids, authority, version, timestamps, index keys;
* ``statement_form``: the canonical (sorted) JSON split around ``stored``,
  and the read model's filter keys;
* ``plan_group``: decisions, positions, ``stored`` and the hash chain;
* ``definitions``: the write-time Activity Definition updates and their fold;
* ``group_columns``: the parameters the group's INSERT sends (compression
  and the authority keys included);
* ``request metrics``: the per-request Prometheus counters (batch 1 only).

What it does not hold: aiohttp and the kernel's TCP, asyncpg's encoding and
the round trips, the event loop; those are the rest of the HTTP workers' CPU
in ``bench/ingest.py``'s figures.

Each piece is timed with ``time.process_time`` over many repetitions, the
best of ``--rounds``, so a busy machine inflates it less than wall time.
``--repo`` imports the ``lrs`` package of another checkout (e.g. main's
worktree) to compare before and after with the same script::

    python bench/ingest_pieces.py                      # this checkout
    python bench/ingest_pieces.py --repo /path/to/main --output ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _measure(pieces: dict, reps: int, rounds: int, per: int) -> dict[str, float]:
    out = {}
    for name, fn in pieces.items():
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for i in range(reps):
                fn(i)
            best = min(best, time.process_time() - started)
        out[name] = round(best / reps / per * 1e6, 2)
    out["sum"] = round(sum(out.values()), 2)
    return out


def run(batch: int, reps: int, rounds: int) -> dict[str, float]:
    import ingest  # bench/ingest.py: the same statements the ingest bench posts
    import msgspec
    from lrs.batching import AppendRequest, LogHead, plan_group, statement_form
    from lrs.documents.activities import fold_definitions
    from lrs.ingest.prepare import prepare_statements
    from lrs.store.ids import RandomUuids, TimeOrderedUuids, parse_uuid
    from lrs.store import group_columns as columns_module
    from lrs.xapi.statement import parse_statements

    bodies = [ingest._body(batch, [i * batch]) for i in range(reps)]
    authority = {"objectType": "Agent", "name": "bench",
                 "account": {"homePage": "http://lrs.example", "name": "bench"}}
    parsed = [parse_statements(b, "1.0.3") for b in bodies]
    new_id = RandomUuids()
    prepared = [prepare_statements(p, version="1.0.3", authority=authority, new_id=new_id, parse_id=parse_uuid)
                for p in parsed]
    forms = [tuple(statement_form(s, getattr(columns_module, "key_literal", columns_module.array_literal)) for s in p) for p in prepared]
    requests = [[AppendRequest("default", tuple(p), f, True)] for p, f in zip(prepared, forms)]
    event_ids = TimeOrderedUuids()
    head = [LogHead(0, b"\0" * 32, datetime(2026, 1, 1, tzinfo=timezone.utc))]

    def plan(i):
        result = plan_group(requests[i], [], head[0], datetime.now(timezone.utc), event_ids)
        head[0] = result.head
        return result

    plans = [plan(i) for i in range(reps)]
    encode = msgspec.json.Encoder().encode
    pieces = {
        "parse": lambda i: parse_statements(bodies[i], "1.0.3"),
        "prepare": lambda i: prepare_statements(parsed[i], version="1.0.3", authority=authority, new_id=new_id,
                                                parse_id=parse_uuid),
        "statement_form": lambda i: tuple(statement_form(s, getattr(columns_module, "key_literal", columns_module.array_literal)) for s in prepared[i]),
        "plan_group": plan,
        "definitions": lambda i: fold_definitions({}, columns_module.group_definition_updates(requests[i], plans[i])),
        "group_columns": lambda i: (columns_module.group_columns(plans[i]), columns_module.authority_keys(plans[i])),
        "response body": lambda i: encode([str(r.statement_id) for r in prepared[i]]),
    }
    if batch == 1:
        from lrs.http import metrics

        if hasattr(metrics, "HTTP_REQUESTS_BY"):
            def request_metrics(i):
                metrics.HTTP_REQUESTS_BY("POST", "/xapi/statements", "200").inc()
                metrics.HTTP_LATENCY_BY("POST", "/xapi/statements").observe(0.004)
                metrics.STATEMENTS_ACCEPTED_BY("default").inc(1)
        else:
            def request_metrics(i):
                metrics.HTTP_REQUESTS.labels("POST", "/xapi/statements", "200").inc()
                metrics.HTTP_LATENCY.labels("POST", "/xapi/statements").observe(0.004)
                metrics.STATEMENTS_ACCEPTED.labels("default").inc(1)
        pieces["request metrics"] = request_metrics
    return _measure(pieces, reps, rounds, batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is measured")
    parser.add_argument("--rounds", type=int, default=5, help="timings per piece; the best is kept (default 5)")
    parser.add_argument("--output", help="result file (default: bench/results/ingest-pieces-<time>.json)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from checkout import piece_record

    record = {
        **piece_record("ingest-pieces", args.repo),
        "batch_100": run(100, 40, args.rounds),
        "batch_1": run(1, 3000, args.rounds),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    for batch in ("batch_100", "batch_1"):
        print(batch, json.dumps(record[batch]))
    if not args.no_save:
        out = Path(args.output or HERE / "results" / f"ingest-pieces-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json")
        out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
