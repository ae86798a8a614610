"""CPU per statement of two small pieces of an HTTP worker's ingest path,
on the ingest bench's statements at batch 100, for one checkout (``--repo``):

* ``key_literal``: the text[] literal of a statement's key rows
  (``lrs.store.group_columns.key_literal`` of its filter keys), part of
  ``bench/ingest_pieces.py``'s ``statement_form``;
* ``check_shape``: the duplicate-key and depth check of a request's
  Statements (``lrs.xapi.jsontext.check_shape``, as ``parse_statements``
  calls it: with the typed Statements where the checkout takes them),
  part of ``ingest_pieces.py``'s ``parse``;
* ``relay series``: setting one of the relay's gauges as its loop does
  (``metrics.RELAY_LAG.labels(relay=...).set`` before branch b100y, the
  kept series after).

Best of ``--rounds`` of ``time.process_time``; run it for each checkout in
turn, alternating::

    python bench/key_literal_shape.py --repo /path/to/base
    python bench/key_literal_shape.py
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _best(fn, rounds: int, per: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return round(best / per * 1e6, 3)


def run(rounds: int) -> dict[str, float]:
    import ingest  # bench/ingest.py: the same statements the ingest bench posts
    import msgspec
    from lrs import metrics
    from lrs.batching import filter_keys
    from lrs.ingest.prepare import prepare_statements
    from lrs.relay import Relay
    from lrs.store.group_columns import key_literal
    from lrs.store.ids import RandomUuids, parse_uuid
    from lrs.xapi.jsontext import check_shape
    from lrs.xapi.statement import _batch_decoder, parse_statements

    bodies = [ingest._body(100, [i * 100]) for i in range(20)]
    statements = 100 * len(bodies)
    authority = {"objectType": "Agent", "name": "bench",
                 "account": {"homePage": "http://lrs.example", "name": "bench"}}
    keys = [filter_keys(p) for b in bodies
            for p in prepare_statements(parse_statements(b, "1.0.3"), version="1.0.3", authority=authority,
                                        new_id=RandomUuids(), parse_id=parse_uuid)]
    typed = [_batch_decoder.decode(b) for b in bodies]
    plain = [msgspec.to_builtins(t) for t in typed]
    takes_typed = "typed" in inspect.signature(check_shape).parameters

    def shapes() -> None:
        for body, value, as_typed in zip(bodies, plain, typed):
            if takes_typed:
                check_shape(body, value, deep_key="extensions", deep_key_met=False, typed=as_typed)
            else:
                check_shape(body, value, deep_key="extensions", deep_key_met=False)

    relay = Relay.__new__(Relay)  # only its metric series: no bus, no pool
    relay.name = "bench"
    if hasattr(Relay, "_series"):
        relay._series_by = {}

        def gauge() -> None:
            for _ in range(statements):
                relay._series(metrics.RELAY_LAG).set(1)
    else:
        def gauge() -> None:
            for _ in range(statements):
                metrics.RELAY_LAG.labels(relay="bench").set(1)

    return {
        "key_literal": _best(lambda: [key_literal(k) for k in keys], rounds, statements),
        "check_shape": _best(shapes, rounds, statements),
        "relay series (one gauge set)": _best(gauge, rounds, statements),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose lrs package is measured")
    parser.add_argument("--rounds", type=int, default=15, help="timings per piece; the best is kept (default 15)")
    parser.add_argument("--output", help="append the record to this JSON-lines file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from checkout import emit_record, piece_record

    record = {**piece_record("key-literal-shape", args.repo), "pieces": run(args.rounds)}
    emit_record(record, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
