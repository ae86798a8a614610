"""CPU of a hinted statement in a replay read in shares, at both ends.

A hinted statement is one of another share's learner that may be evidence:
the process that judged its page sends it to that share.  Two ways, both
with this checkout's rules, over the first ``--statements`` statements of a
filled log (``bench/projection_ab.py``'s databases) that ``judge`` finds may
be evidence:

- **opened**: the opened statement is sent (msgpack of position, tenant,
  bytes), and the receiving share decodes (msgspec view), judges and builds
  its evidence (before branch replay4);
- **hint**: the judge sends what it found and the fields ``evidence_of``
  reads (``share_judging.EvidenceHint``), from which the receiving share
  builds the evidence (``judgement.evidence_from``).

Process CPU time per statement, the best of ``--repeat`` passes, each way
in turn ``--rounds`` times; and the bytes sent per statement.

    python bench/replay_hint_cost.py --database-url "postgresql://postgres@/replay_all_evidence_100000?host=$D/run&port=5432"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import msgspec  # noqa: E402

from lrs.payload_codec import open_payload  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.judgement import aligned_to, evidence_from  # noqa: E402
from projections.competency.policy import evidence_of, judge  # noqa: E402
from projections.competency.share_judging import Hinted, _evidence_hint  # noqa: E402
from projections.competency.statement_view import decode_view  # noqa: E402

SELECT = "SELECT payload FROM events WHERE event_type = 'statement' ORDER BY position LIMIT $1"


async def _payloads(url: str, limit: int) -> list[bytes]:
    conn = await asyncpg.connect(url)
    try:
        return [open_payload(row[0]) for row in await conn.fetch(SELECT, limit)]
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    catalog = load_catalog()
    candidates = []
    for payload in asyncio.run(_payloads(args.database_url, args.statements)):
        view = decode_view(payload)
        judged = judge(view, catalog)
        if isinstance(judged, tuple):
            candidates.append((payload, view, judged))
    encode = msgspec.msgpack.Encoder().encode
    opened_decoder = msgspec.msgpack.Decoder(list[tuple[int, str, bytes]])
    hint_decoder = msgspec.msgpack.Decoder(list[Hinted])

    def send_opened() -> bytes:
        return encode([(i, "default", payload) for i, (payload, _, _) in enumerate(candidates)])

    def receive_opened(message: bytes) -> None:
        for _, _, opened in opened_decoder.decode(message):
            view = decode_view(opened)
            evidence_of(view, judge(view, catalog), catalog)  # type: ignore[arg-type]

    def send_hint() -> bytes:
        return encode([_evidence_hint(i, "default", view, judged, catalog) for i, (_, view, judged) in enumerate(candidates)])

    def receive_hint(message: bytes) -> None:
        for h in hint_decoder.decode(message):
            judged = (h.statement_id, h.verb, aligned_to(h.activity, h.objective, catalog), h.learner,  # type: ignore[union-attr]
                      h.judged, h.completed, h.score)  # type: ignore[union-attr]
            evidence_from(judged, catalog, h.platform, h.registration, h.mastery, h.timestamp, h.stored,  # type: ignore[union-attr]
                          h.authority)  # type: ignore[union-attr,arg-type]

    def cpu_us(call: Callable[..., Any], *call_args: Any) -> float:
        best = float("inf")
        for _ in range(args.repeat):
            start = time.process_time()
            call(*call_args)
            best = min(best, time.process_time() - start)
        return round(best * 1e6 / len(candidates), 3)

    rounds = []
    for _ in range(args.rounds):
        opened, hinted = send_opened(), send_hint()
        rounds.append({
            "opened": {"judge_us": cpu_us(send_opened), "receiver_us": cpu_us(receive_opened, opened),
                       "bytes": round(len(opened) / len(candidates))},
            "hint": {"judge_us": cpu_us(send_hint), "receiver_us": cpu_us(receive_hint, hinted),
                     "bytes": round(len(hinted) / len(candidates))},
        })
    print(json.dumps({"statements": args.statements, "candidates": len(candidates),
                      "payload_bytes": round(sum(len(p) for p, _, _ in candidates) / len(candidates)),
                      "loadavg": os.getloadavg(), "rounds": rounds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
