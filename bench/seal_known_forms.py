"""CPU of ``StatementSealer.agent`` for learners whose sealed forms are
cached: 50,000 known forms, batches of 100, one Agent a Statement, the refs
frozen per batch as ``LearnerKeys.seal_statements`` does, for the lrs of the
checkout given (first argument): ns an Agent, min and median of 15 passes.
Alternate the trees (docs/privacy.md, "A known learner's form (branch
seal-forms)").

    python bench/seal_known_forms.py /path/to/before
    python bench/seal_known_forms.py .
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BATCHES = 500
PASSES = 15


async def measure() -> tuple[float, float]:
    import msgspec

    from bench.ingest import _TEMPLATE
    from seal_layout import seal_names
    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys

    seal = seal_names()  # the sealing names, in this layout or the one before branch split2

    tenant = "default"
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example/", "name": "client-1"}}

    def statement(n: int) -> dict:
        return msgspec.json.decode(_TEMPLATE % (
            uuid.uuid4(), n, n % 50_000, n % 40, n % 21, n % 21, n % 100, n % 100, 1 + n % 59, uuid.uuid4(), n % 60))

    data = [[statement(b * 100 + i) for i in range(100)] for b in range(BATCHES)]
    keyring = LearnerKeys(None, MasterKey(secrets.token_bytes(32)), capacity=10 * BATCHES * 100)  # type: ignore[arg-type]
    idents = seal.identities({"actor": authority})
    for batch in data:
        for one in batch:
            idents |= seal.identities(one)
    for ident in idents:  # every key cached
        keyring._remember(tenant, keyring.pseudonym(tenant, ident), 1,
                          seal.new_data_key_cipher(secrets.token_bytes(32)), keyring._version)
    for batch in data:  # every form sealed and committed once
        keyring.stored(await keyring.seal_statements(tenant, batch, authority))
    forms = keyring._sealed[tenant]

    def no_key(ident: str) -> seal.SealKey:
        raise AssertionError(f"a known form needs no key ({ident})")

    runs = []
    for _ in range(PASSES):
        start = time.process_time()
        for batch in data:
            sealer = seal.StatementSealer(tenant, forms, no_key)
            for one in batch:
                sealer.agent(one["actor"])
            frozenset(sealer.refs)
        runs.append((time.process_time() - start) / (BATCHES * 100) * 1e9)
    runs.sort()
    return runs[0], runs[len(runs) // 2]


def main() -> int:
    tree = sys.argv[1] if len(sys.argv) > 1 else str(HERE)
    sys.path.insert(0, str(Path(tree).resolve()))
    sys.path.insert(1, str(HERE))
    low, median = asyncio.run(measure())
    print(f"{tree} sealer.agent ns: min {low:.0f} median {median:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
