"""CPU cost of sealing personal data on the ingest path (docs/privacy.md).

Runs the request-side work of a POST after parsing, in process, without a
server: prepare the bench's Statements (bench/ingest.py's template) for the
writer (ids, authority, filter keys, the stored JSON), with and without
:meth:`lrs.store.learner_keys.LearnerKeys.seal_statements` first,
alternating.  The first round seals every learner for the first time (one
AES-GCM-SIV per identity); later rounds find the sealed forms cached.  CPU time (``time.process_time``), so a busy machine slows both
sides alike.  Keys are in the cache (as they are after a learner's first
statement); ``--learners`` distinct actors, so the sealed-form cache is
cold for a new learner and warm after.

    python bench/seal_cost.py --batches 200 --batch 100 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import _statement, _uuid_texts  # noqa: E402
from lrs.batching import statement_form  # noqa: E402
from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.privacy.master import MasterKey  # noqa: E402
from lrs.privacy.data_key import new_data_key_cipher  # noqa: E402
from lrs.store.learner_keys import LearnerKeys  # noqa: E402
from lrs.xapi.statement import parse_statements  # noqa: E402

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://127.0.0.1:8080", "name": "bench"}}


def bodies(batches: int, batch: int, learners: int) -> list[bytes]:
    out = []
    n = 0
    for _ in range(batches):
        ids = _uuid_texts(2 * batch)
        statements = [_statement((n + i) % learners, ids[2 * i], ids[2 * i + 1]) for i in range(batch)]
        n += batch
        out.append(("[" + ",".join(statements) + "]").encode())
    return out


async def run(requests: list[list[dict]], keyring: LearnerKeys | None) -> tuple[float, float]:
    """CPU seconds (sealing, then preparing) for every request, already parsed."""
    sealing = preparing = 0.0
    for statements in requests:
        started = time.process_time()
        authority = AUTHORITY
        if keyring is not None:
            sealed_ = await keyring.seal_statements("default", statements, authority)
            statements, authority = sealed_.statements, sealed_.authority
        sealed = time.process_time()
        prepared = prepare_statements(statements, version="1.0.3", authority=authority, new_id=uuid.uuid4)
        for statement in prepared:
            statement_form(statement)
        sealing += sealed - started
        preparing += time.process_time() - sealed
    return sealing, preparing


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--learners", type=int, default=50_000, help="distinct actors (bench/ingest.py: 50,000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", help="result file (JSON)")
    args = parser.parse_args()

    keyring = LearnerKeys(None, MasterKey(os.urandom(32)))  # type: ignore[arg-type]
    # Every learner's key already made (the DB round trip of a first statement is not measured here).
    idents = {f"mbox:mailto:learner{n}@agency{n % 40}.example.gov" for n in range(args.learners)}
    idents.add("account:http://127.0.0.1:8080|bench")
    for ident in idents:
        pseudonym = keyring.pseudonym("default", ident)
        keyring._remember("default", pseudonym, 1, new_data_key_cipher(os.urandom(32)), keyring._version)

    requests = [parse_statements(body, "1.0.3") for body in bodies(args.batches, args.batch, args.learners)]
    clear, sealed, sealing = [], [], []
    for _ in range(args.rounds):
        clear.append(sum(await run(requests, None)))
        seal_s, prepare_s = await run(requests, keyring)
        sealed.append(seal_s + prepare_s)
        sealing.append(seal_s)
    count = args.batches * args.batch
    result = {
        "benchmark": "seal_cost",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "statements_per_round": count,
        "batch": args.batch,
        "learners": args.learners,
        "cpu_us_per_statement": {
            "clear": [round(t / count * 1e6, 2) for t in clear],
            "sealed": [round(t / count * 1e6, 2) for t in sealed],
            "of_which_sealing": [round(t / count * 1e6, 2) for t in sealing],
        },
    }
    median_clear, median_sealed = statistics.median(clear), statistics.median(sealed)
    result["median_us"] = {"clear": round(median_clear / count * 1e6, 2), "sealed": round(median_sealed / count * 1e6, 2)}
    result["sealed_over_clear"] = round(median_sealed / median_clear, 3)
    print(json.dumps(result, indent=1))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
