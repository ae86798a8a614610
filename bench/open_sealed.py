"""CPU of opening a page of sealed Statements for GET /xapi/statements.

With LRS_SEAL_PERSONAL_DATA on (the default) every page the reader returns
goes through :meth:`lrs.store.learner_keys.LearnerKeys.open_payloads` in the
HTTP worker.  This times that call alone, in one process, for pages of
``--page`` Statements of ``bench/bulk_store.py``'s generator sealed as the
service seals them (v4 forms, one key per identity): the keys and the
ciphertexts are served from memory as the keyring's caches serve a known
learner's (the key epoch's round trip to PostgreSQL is not in the figure).
``--tree`` times another checkout's code (the before side of an A/B).

    .venv/bin/python bench/open_sealed.py --tree /work/wt/base --label before
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TENANT = "default"


def _setup(tree: Path) -> None:
    sys.path.insert(0, str(tree / "bench"))  # the tree's generator, which puts the tree first on the path
    sys.path.insert(0, str(tree))


async def _measure(pages: int, page_size: int, rounds: int, learners: int) -> dict[str, Any]:
    import bulk_store as gen
    from seal_layout import seal_names
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    master = os.urandom(32)
    keys: dict[str, Any] = {}

    def key_of(ident: str) -> Any:
        key = keys.get(ident)
        if key is None:
            key = keys[ident] = seal.SealKey(seal.pseudonym(master, TENANT, ident), 1,
                                             seal.new_data_key_cipher(os.urandom(32)))
        return key

    sealer = seal.StatementSealer(TENANT, {}, key_of)
    # pages of Statements spread over the store (a page of an activity: a learner seldom twice)
    numbers = [[(p * 7919 + i * 104729) % (learners * 50) for i in range(page_size)] for p in range(pages)]
    payloads = [[seal.encode(seal.seal_statement(gen.statement(n), sealer.agent)) for n in page] for page in numbers]
    ciphers = {(k.pseudonym, k.generation): k.cipher.cipher() for k in keys.values()}
    ciphertexts = dict(sealer.ciphertexts)
    keyring = LearnerKeys(None, MasterKey(os.urandom(32)))  # type: ignore[arg-type]

    async def ciphers_for_reading(tenant: str, refs: Any) -> dict[Any, Any]:
        return {ref: ciphers[ref] for ref in refs}

    async def ciphertexts_of(references: Any) -> dict[bytes, bytes]:
        return {ref: ciphertexts[ref] for ref in references if ref in ciphertexts}

    keyring.ciphers_for_reading = ciphers_for_reading  # type: ignore[method-assign]
    keyring._ciphertexts_of = ciphertexts_of  # type: ignore[method-assign]
    first = [await keyring.open_payloads(TENANT, page) for page in payloads]  # the first read of each page
    assert not any(seal.is_sealed_payload(p) for page in first for p in page)  # every identity opened
    per_round = []
    for _ in range(rounds):
        t0 = time.process_time()
        for page in payloads:
            await keyring.open_payloads(TENANT, page)
        per_round.append((time.process_time() - t0) * 1000 / pages)
    import lrs

    return {"lrs": str(Path(lrs.__file__).parent), "pages": pages, "page_size": page_size, "rounds": rounds,
            "identities_per_statement": round(sum(len(seal.sealed_refs(seal.decode(p))) for page in payloads
                                                  for p in page) / (pages * page_size), 2),
            "cpu_ms_per_page": [round(x, 3) for x in per_round],
            "cpu_ms_per_page_median": round(statistics.median(per_round), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose lrs is timed (default: this one)")
    parser.add_argument("--pages", type=int, default=50, help="distinct pages (default: 50)")
    parser.add_argument("--page", type=int, default=100, help="Statements a page (default: 100)")
    parser.add_argument("--rounds", type=int, default=5, help="reads of every page, timed (default: 5)")
    parser.add_argument("--learners", type=int, default=2000, help="learners the pages name (default: 2000)")
    parser.add_argument("--label", default="", help="a word for the result file name (before, after...)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args(argv)
    _setup(args.tree.resolve())
    load_before = [round(x, 2) for x in os.getloadavg()]
    measured = asyncio.run(_measure(args.pages, args.page, args.rounds, args.learners))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=args.tree,
                            check=False).stdout.strip()
    result = {"benchmark": "open a page of sealed statements", "when": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "command": "python bench/open_sealed.py " + " ".join(sys.argv[1:]), **measured,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "commit": commit}}
    print(json.dumps(result, indent=1))
    if not args.no_write:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        label = f"-{args.label}" if args.label else ""
        path = ROOT / "bench" / "results" / f"open-sealed{label}-{stamp}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
