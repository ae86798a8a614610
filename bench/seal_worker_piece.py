"""CPU an HTTP worker spends per Statement on sealing, in one process
without servers: ``LearnerKeys.seal_statements`` on batches of 100 of
bench/ingest.py's template with every learner's key cached, and the same
followed by what the worker does next with the Statements (prepare them,
their stored form and its zstd frame), against that path for the clear
Statements.

    python bench/seal_worker_piece.py                       # this tree
    python bench/seal_worker_piece.py --tree /work/main     # another checkout's lrs

``known``: every Agent was sealed (and committed) before, as the steady state
of learners sending under one name; ``new names``: every Statement names its
learner as never before (the template's default), so every Agent is sealed
anew: an AES-GCM-SIV ciphertext and its reference.  Keys are never read here
(all cached): their cost is PostgreSQL's and the round trip's, measured by
bench/seal_ab.py.  CPU time of this process (``time.process_time``), median
of ``--rounds``; clear and sealed alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(HERE), help="checkout whose lrs package is measured (default: this one)")
    parser.add_argument("--batches", type=int, default=100, help="batches of 100 Statements per pass")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve()))
    sys.path.insert(1, str(HERE))
    print(json.dumps({"tree": args.tree, **asyncio.run(measure(args.batches, args.rounds))}, indent=1))
    return 0


async def measure(batches: int, rounds: int) -> dict[str, dict[str, float]]:
    import msgspec

    from bench.ingest import _TEMPLATE
    from lrs.batching import statement_form
    from lrs.ingest.prepare import prepare_statements
    from lrs.payload_codec import store_payloads
    from seal_layout import seal_names
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys
    from lrs.store.group_columns import array_literal

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example/", "name": "client-1"}}

    def statement(n: int, name: int) -> dict:
        return msgspec.json.decode(_TEMPLATE % (
            uuid.uuid4(), name, n % 50_000, n % 40, n % 21, n % 21, n % 100, n % 100, 1 + n % 59, uuid.uuid4(), n % 60))

    def after_sealing(statements: list[dict], authority: dict) -> None:
        prepared = prepare_statements(statements, version="1.0.3", authority=authority, new_id=uuid.uuid4)
        forms = [statement_form(p, array_literal) for p in prepared]
        store_payloads([b"2026-12-06T12:00:00.000000Z".join(f.payload_parts) for f in forms])

    results: dict[str, dict[str, float]] = {}
    for case in ("known", "new names"):
        data = [[statement(b * 100 + i, (b * 100 + i) % 50_000 if case == "known" else b * 100 + i)
                 for i in range(100)] for b in range(batches)]
        keyring = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=10 * batches * 100)  # type: ignore[arg-type]
        idents = seal.identities({"actor": authority})
        for batch in data:
            for one in batch:
                idents |= seal.identities(one)
        for ident in idents:  # every key cached, as LearnerKeys._remember keeps a key read or made
            keyring._remember(tenant, keyring.pseudonym(tenant, ident), 1,
                              seal.new_data_key_cipher(secrets.token_bytes(32)), keyring._version)

        async def seal_all(then: bool) -> None:
            for batch in data:
                sealed = await keyring.seal_statements(tenant, batch, authority)
                if case == "known":
                    keyring.stored(sealed)  # new names: never stored, so never reused
                if then:
                    after_sealing(sealed.statements, sealed.authority)

        if case == "known":
            await seal_all(False)  # every form sealed and committed once
        runs: dict[str, list[float]] = {"seal_statements": [], "clear path": [], "sealed path": []}
        count = batches * 100
        for _ in range(rounds):
            start = time.process_time()
            for batch in data:
                after_sealing(batch, authority)
            runs["clear path"].append((time.process_time() - start) / count * 1e6)
            start = time.process_time()
            await seal_all(True)
            runs["sealed path"].append((time.process_time() - start) / count * 1e6)
            start = time.process_time()
            await seal_all(False)
            runs["seal_statements"].append((time.process_time() - start) / count * 1e6)
        results[case] = {f"{name} us/statement": round(statistics.median(v), 2) for name, v in runs.items()}
    return results


if __name__ == "__main__":
    raise SystemExit(main())
