"""Bytes of a stored Statement, clear and sealed, as a build writes it: the
canonical JSON (what is hashed, carried by the relay and nats-server) and
the zstd frame ``events.payload`` keeps (shipped dictionary), mean over
bench/ingest.py's template statements, sealed the way the service seals
them (``LearnerKeys.seal_statements``, every key cached) with the
authority the bench's credential gets.  In one process, no servers.

    python bench/seal_form_bytes.py --tree /work/wt/base --tree .

Result: ``bench/results/seal_form_bytes-<name>-<stamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def keyring_knowing(tenant: str, authority: dict, statements: list[dict]):
    """A LearnerKeys (no database) with a key cached for every identity of
    ``statements`` and ``authority``: sealing them asks PostgreSQL nothing."""
    from seal_layout import seal_names
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    keyring = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=10 * len(statements))  # type: ignore[arg-type]
    idents = seal.identities({"actor": authority})
    for one in statements:
        idents |= seal.identities(one)
    for ident in idents:
        keyring._remember(tenant, keyring.pseudonym(tenant, ident), 1,
                          seal.new_data_key_cipher(secrets.token_bytes(32)), keyring._version)
    return keyring


async def measure(count: int) -> dict:
    import msgspec

    from bench.ingest import _TEMPLATE
    from lrs.batching import statement_form
    from lrs.ingest.prepare import prepare_statements
    from lrs.payload_codec import store_payloads
    from lrs.store.group_columns import array_literal

    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "http://127.0.0.1:8080", "name": "bench"}}
    statements = [msgspec.json.decode(_TEMPLATE % (
        uuid.uuid4(), n, n, n % 40, n % 21, n % 21, n % 100, n % 100, 1 + n % 59, uuid.uuid4(), n % 60))
        for n in range(count)]
    keyring = keyring_knowing(tenant, authority, statements)
    # Each naming met for the first time (the worst case's every Statement),
    # then met again (a running programme's, its form cached): both v4 here;
    # branch sealrow's inline-first (reverted; 3fb38de..af2a893) wrote the
    # first in v2, 526.6 compressed bytes against 301.2.
    first = await keyring.seal_statements(tenant, statements, authority)
    keyring.stored(first)
    sealed = await keyring.seal_statements(tenant, statements, authority)

    def stored(bodies: list[dict], authority: dict) -> dict:
        prepared = prepare_statements(bodies, version="1.0.3", authority=authority, new_id=uuid.uuid4)
        payloads = [b"2026-12-06T12:00:00.000000Z".join(statement_form(p, array_literal).payload_parts)
                    for p in prepared]
        frames = store_payloads(payloads)
        return {"json_bytes": round(statistics.mean(map(len, payloads)), 1),
                "compressed_bytes": round(statistics.mean(map(len, frames)), 1)}

    clear, sealed_bytes = stored(statements, authority), stored(sealed.statements, sealed.authority)
    first_bytes = stored(first.statements, first.authority)
    form = sealed.statements[0]["actor"]["sealed"]
    return {"clear": clear, "sealed": sealed_bytes, "sealed_form_example": form,
            "sealed_over_clear_compressed": round(sealed_bytes["compressed_bytes"] / clear["compressed_bytes"], 3),
            "sealed_first_naming": first_bytes, "first_naming_form_example": first.statements[0]["actor"]["sealed"],
            "first_naming_over_clear_compressed": round(first_bytes["compressed_bytes"] / clear["compressed_bytes"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="checkout(s) whose lrs is measured (default: this one)")
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--name", default="seal-form")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure the tree on sys.path, print JSON
    args = parser.parse_args()
    if args.one:
        sys.path.insert(0, args.one)
        sys.path.insert(1, str(HERE))
        print(json.dumps(asyncio.run(measure(args.statements))))
        return 0
    results = {}
    for tree in args.tree or [str(HERE)]:
        tree = str(Path(tree).resolve())
        out = subprocess.run([sys.executable, __file__, "--one", tree, "--statements", str(args.statements)],
                             check=True, capture_output=True, text=True, cwd=tree)
        results[tree] = json.loads(out.stdout)
        print(tree, results[tree])
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = HERE / "bench" / "results" / f"seal_form_bytes-{args.name}-{stamp}.json"
    path.write_text(json.dumps({"benchmark": "seal_form_bytes", "command": " ".join(sys.argv),
                                "statements": args.statements, "trees": results}, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
