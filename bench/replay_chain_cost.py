"""What checking the hash chain costs a replay, piece by piece, per event.

On the logs ``bench/projection_ab.py`` filled under ``--data-dir`` (it
starts that PostgreSQL here), pages of ``--page`` events are read as a
replay reads them and the CPU of this thread is taken for each piece (the
best of ``--repeat``): the page as a replay read it before the chain was
checked (4 columns) and as it reads it now (8: the event id, stored,
prev_hash and hash too), opening the payloads, building the records,
formatting the stored times, lrs.eventlog.verify_chain, and
projections.log_chain.checked_page whole.  Thread CPU, not wall time:
on a shared machine a wall time says more about the neighbours.

Since branch lag6 a replay reads ``stored`` as timestamptz_send's 8 bytes
and checks the page's columns (lrs.eventlog.verify_rows) without building
EventRecords: the page read both ways, the times formatted both ways, and
the check as the round's start made it (``checked_page_by_records``, kept
here) beside checked_page now, in one process on the same rows.

    python bench/replay_chain_cost.py --data-dir /work/benchdata/replaychain/ab --out bench/results/<file>.txt
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from lrs.eventlog import EventRecord, stored_texts_of, stored_texts_of_sent, verify_chain  # noqa: E402
from lrs.payload_codec import open_payload  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.store.log_reader import row_payload  # noqa: E402
from projections.log_chain import Page, PageChain, checked_page, page_chain  # noqa: E402
from projections.replay import SELECT_LOG_PAGE  # noqa: E402

# The page as a replay read it before it checked the chain.
SELECT_UNCHECKED_PAGE = """
SELECT position, tenant, event_type, payload FROM events WHERE position > $1 AND position <= $2
ORDER BY position LIMIT $3
"""
# The checked page as a replay read it before branch lag6: stored as asyncpg's datetime.
SELECT_DATETIME_PAGE = SELECT_LOG_PAGE.replace("timestamptz_send(stored)", "stored")
DATABASES = ("replay_cmi5_100000", "replay_all_evidence_100000")


def checked_page_by_records(rows: Any) -> tuple[Page, PageChain]:
    """projections.log_chain.checked_page as it was before branch lag6 (rows of SELECT_DATETIME_PAGE)."""
    records = [
        EventRecord(position, event_id, tenant, event_type, None, stored, row_payload(payload), prev_hash, hash_)
        for position, event_id, tenant, event_type, stored, payload, prev_hash, hash_ in rows
    ]
    chain = page_chain(records)
    if chain.bad is not None:
        records = [r for r in records if r.position < chain.bad]
    return [(r.position, r.tenant, r.event_type, r.payload) for r in records], chain

# The 4 columns and one more of the checked page's, to see what each costs to read.
ONE_MORE = {"event_id": "event_id", "stored": "stored", "prev_hash and hash": "prev_hash, hash"}


def thread_cpu(function: Callable[[], Any], events: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        function()
        best = min(best, time.thread_time() - started)
    return best / events * 1e6


async def thread_cpu_async(function: Callable[[], Awaitable[Any]], events: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        await function()
        best = min(best, time.thread_time() - started)
    return best / events * 1e6


async def measure(url: str, page: int, repeat: int) -> list[tuple[str, float]]:
    conn = await asyncpg.connect(url)
    try:
        after = 20_000
        rows = await conn.fetch(SELECT_DATETIME_PAGE, after, after + page, page)
        sent_rows = await conn.fetch(SELECT_LOG_PAGE, after, after + page, page)
        sent = [row[4] for row in sent_rows]
        n = len(rows)
        assert checked_page(sent_rows) == checked_page_by_records(rows)
        opened = [row_payload(row[5]) for row in rows]
        records = [EventRecord(r[0], r[1], r[2], r[3], None, r[4], p, r[6], r[7]) for r, p in zip(rows, opened)]
        texts = stored_texts_of(records)
        first = records[0]
        found = [
            ("read a page, 4 columns (before)", await thread_cpu_async(
                lambda: conn.fetch(SELECT_UNCHECKED_PAGE, after, after + page, page), n, repeat)),
            ("read a page, 8 columns, stored as a datetime (before)", await thread_cpu_async(
                lambda: conn.fetch(SELECT_DATETIME_PAGE, after, after + page, page), n, repeat)),
            ("read a page, 8 columns, stored as 8 bytes (now)", await thread_cpu_async(
                lambda: conn.fetch(SELECT_LOG_PAGE, after, after + page, page), n, repeat)),
            *[(f"read a page, 4 columns + {name}", await thread_cpu_async(
                lambda more=more: conn.fetch(SELECT_UNCHECKED_PAGE.replace("payload FROM", f"payload, {more} FROM"),
                                             after, after + page, page), n, repeat))
              for name, more in ONE_MORE.items()],
            ("open every payload", thread_cpu(lambda: [open_payload(r[5]) for r in rows], n, repeat)),
            ("build the EventRecords", thread_cpu(
                lambda: [EventRecord(r[0], r[1], r[2], r[3], None, r[4], p, r[6], r[7]) for r, p in zip(rows, opened)],
                n, repeat)),
            ("format the stored times (datetimes, before)", thread_cpu(lambda: stored_texts_of(records), n, repeat)),
            ("format the stored times (8 bytes, now)", thread_cpu(lambda: stored_texts_of_sent(sent), n, repeat)),
            ("verify_chain, times formatted", thread_cpu(
                lambda: verify_chain(records, prev_position=first.position - 1, prev_hash=first.prev_hash,
                                     stored_texts=texts), n, repeat)),
            ("of which SHA-256 over the payloads alone", thread_cpu(
                lambda: [hashlib.sha256(p).digest() for p in opened], n, repeat)),
            ("checked page whole by records (before)", thread_cpu(lambda: checked_page_by_records(rows), n, repeat)),
            ("checked_page whole by columns (now)", thread_cpu(lambda: checked_page(sent_rows), n, repeat)),
        ]
        found.append(("mean payload bytes opened", sum(map(len, opened)) / n))
        return found
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> str:
    pg = EmbeddedPostgres(Path(args.data_dir))
    await pg.start()
    lines = [f"# bench/replay_chain_cost.py, page {args.page}, best of {args.repeat}, thread CPU µs an event"]
    try:
        for database in DATABASES:
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            lines.append(f"## {database} (load average {load})")
            for label, value in await measure(pg.url_for(database), args.page, args.repeat):
                lines.append(f"{label:55s} {value:8.2f}")
    finally:
        await pg.stop()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="where bench/projection_ab.py filled the logs")
    parser.add_argument("--page", type=int, default=10_000, help="events a page (default: 10000, lrs replay's)")
    parser.add_argument("--repeat", type=int, default=9, help="runs of each piece; the best is kept (default: 9)")
    parser.add_argument("--out", help="also write the result here")
    args = parser.parse_args(argv)
    text = asyncio.run(main_async(args))
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
