"""The cyclic garbage collector's share of an HTTP worker's CPU on the
sealed and the clear ingest path, in one process without servers: batches
of 100 of bench/ingest.py's template (learners known: every key and sealed
form cached, as ``--learners 50000 --warm-passes 4`` leaves a worker) are
decoded, validated, sealed (or not) and prepared, and each batch's objects
are kept alive for the next ``--in-flight`` batches, as a worker holds a
request's Statements while the group commit it waits for runs (16 requests
of 100 at concurrency 16).  Reported per gen-0 threshold (``gc.set_threshold``;
the service's is ``lrs.commands.common.SERVICE_GC_THRESHOLDS``): collections
per 1,000 Statements and the collector's CPU per Statement (``gc.callbacks``),
and the process's CPU per Statement (``time.process_time``, median of
``--rounds``; clear and sealed alternate).

    python bench/seal_gc_piece.py [--thresholds 20000,100000] [--in-flight 16]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import sys
import time
import uuid
from collections import deque
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="20000,100000", help="gen-0 thresholds to compare (comma-separated)")
    parser.add_argument("--in-flight", type=int, default=16, help="batches kept alive at once (default 16)")
    parser.add_argument("--batches", type=int, default=200, help="batches of 100 per pass (default 200)")
    parser.add_argument("--learners", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", help="also write the result to this JSON file")
    args = parser.parse_args()
    thresholds = [int(t) for t in args.thresholds.split(",")]
    result = asyncio.run(measure(thresholds, args.in_flight, args.batches, args.learners, args.rounds))
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


async def measure(thresholds: list[int], in_flight: int, batches: int, learners: int, rounds: int) -> dict:
    from bench.ingest import _TEMPLATE
    from lrs.batching import statement_form
    from lrs.ingest.prepare import prepare_statements
    from seal_layout import seal_names
    from lrs.privacy.master import MasterKey
    from lrs.store.group_columns import array_literal
    from lrs.store.learner_keys import LearnerKeys
    from lrs.xapi.statement import parse_statements

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example/", "name": "client-1"}}
    bodies = [
        ("[" + ",".join(_TEMPLATE % (uuid.uuid4(), n % learners, n % learners, n % 40, n % 21, n % 21, n % 100,
                                      n % 100, 1 + n % 59, uuid.uuid4(), n % 60)
                        for n in range(b * 100, b * 100 + 100)) + "]").encode()
        for b in range(batches)
    ]
    keyring = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=max(250_000, learners))  # type: ignore[arg-type]
    for body in bodies:  # every key cached and every form stored, as after the warm-up passes
        batch = parse_statements(body, "1.0.3")
        for ident in seal.identities({"actor": authority}) | set().union(*map(seal.identities, batch)):
            pseudonym = keyring.pseudonym(tenant, ident)
            if keyring.cached(tenant, pseudonym) is None:
                keyring._remember(tenant, pseudonym, 1, seal.new_data_key_cipher(secrets.token_bytes(32)),
                                  keyring._version)
        keyring.stored(await keyring.seal_statements(tenant, batch, authority))

    spent = {"collections": 0, "cpu": 0.0, "started": 0.0}

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            spent["started"] = time.process_time()
        else:
            spent["collections"] += 1
            spent["cpu"] += time.process_time() - spent["started"]

    async def one_pass(sealed: bool) -> None:
        held: deque = deque(maxlen=in_flight)
        for body in bodies:
            statements = parse_statements(body, "1.0.3")
            clear, auth, kept = statements, authority, None
            if sealed:
                kept = await keyring.seal_statements(tenant, statements, authority)
                clear, auth = kept.statements, kept.authority
            prepared = prepare_statements(clear, version="1.0.3", authority=auth, new_id=uuid.uuid4)
            forms = [statement_form(p, array_literal) for p in prepared]
            if kept is not None:
                keyring.stored(kept)
            held.append((statements, kept, prepared, forms))

    gc.collect()
    gc.freeze()  # as settle_heap: the start-up objects (and here the caches) are never scanned
    gc.callbacks.append(watch)
    before = gc.get_threshold()
    count = batches * 100
    results: dict = {"in_flight_batches": in_flight, "statements_per_pass": count, "learners": learners}
    try:
        for threshold in thresholds:
            gc.set_threshold(threshold, 20, 20)
            runs: dict[str, dict[str, list[float]]] = {
                name: {"cpu": [], "gc_cpu": [], "collections": []} for name in ("clear", "sealed")}
            for _ in range(rounds):
                for name in ("clear", "sealed"):
                    gc.collect()
                    spent.update(collections=0, cpu=0.0)
                    start = time.process_time()
                    await one_pass(name == "sealed")
                    runs[name]["cpu"].append((time.process_time() - start) / count * 1e6)
                    runs[name]["gc_cpu"].append(spent["cpu"] / count * 1e6)
                    runs[name]["collections"].append(spent["collections"] / count * 1000)
            results[f"gen0 threshold {threshold}"] = {
                name: {"us/statement": round(statistics.median(r["cpu"]), 2),
                       "collector us/statement": round(statistics.median(r["gc_cpu"]), 2),
                       "collections per 1000 statements": round(statistics.median(r["collections"]), 2)}
                for name, r in runs.items()
            }
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*before)
        gc.unfreeze()
    return results


if __name__ == "__main__":
    raise SystemExit(main())
