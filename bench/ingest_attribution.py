"""Where batch-100 ingest's CPU goes among the pieces added since e54f0a8.

bench/results/ingest-ab-20261206.json shows batch-100 ingest at 8,244/s at
e54f0a8 and 7,560/s after the trust, IRI, Activity definition, rate-limit and
middleware work: about 8% less, or ~11 µs more machine CPU per statement
(2 cores / 7,560 per second = 265 µs a statement, PostgreSQL and NATS
included).  This micro-benchmark measures each piece alone, with the real
functions, in CPU time per statement (``time.process_time``, so a busy
machine inflates the figures less than wall time), each with and without
the piece, alternated within one process:

* ``iri``: RFC 3987 matching of the five IRIs a bench statement carries,
  against the loose pattern used before (bench/iri.py's patterns);
* ``relay_prev_hash``: the relay's message for one event (lrs.relay.event_message
  and the HPUB frame) with and without the ``Lrs-Prev-Hash`` header
  issue 13 added;
* ``anchor_check``: the anchor writer's check of the chain before signing
  (lrs.eventlog.verify_chain: each event hashed once), per event; with
  ``--database-url`` also reading the events from PostgreSQL as it does;
* ``middlewares``: the per-request work of the new middlewares (load
  shedding's budget check, the NUL guard on path, query and headers, the
  shared rate limiter's local token) divided by the 100 statements of a
  request; the rate limiter's PostgreSQL lease is one query per lease
  (about 50 ms of the rate), not per request.

Write-time Activity Definitions cost PostgreSQL work as well as Python and
are measured by ``bench/store_writer.py --defines`` (a real writer against
PostgreSQL; bench/results/store-writer-defines-*.json).

    python bench/ingest_attribution.py [--database-url postgresql://...] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from bench.iri import LOOSE_PATTERN  # noqa: E402
from bench.store_writer import sample_statement  # noqa: E402
from lrs.event_contract import PREV_HASH_HEADER, OutgoingMessage  # noqa: E402
from lrs.eventlog import GENESIS_HASH, EventRecord, StoredFormatter, record_hash, verify_chain  # noqa: E402
from lrs.http.shedding import SheddingBudget, overload_reason  # noqa: E402
from lrs.http.text_guard import unstorable_part  # noqa: E402
from lrs.nats.bus import hpub_frame  # noqa: E402
from lrs.relay import event_message  # noqa: E402
from lrs.xapi.common import IRI_PATTERN  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STATEMENTS_PER_REQUEST = 100
IRIS = [
    "http://adlnet.gov/expapi/verbs/passed",
    "https://mooc.example.gov/courses/digcomp/unit-17",
    "http://adlnet.gov/expapi/activities/lesson",
    "https://mooc.example.gov/courses/digcomp",
    "mailto:learner17@agency3.example.gov",
]


def cpu_us(function, number: int) -> float:
    """CPU µs per call of ``function``."""
    started = time.process_time()
    for _ in range(number):
        function()
    return (time.process_time() - started) / number * 1e6


def chain(count: int) -> list[EventRecord]:
    """``count`` events of the bench's statements, chained from genesis."""
    records, prev = [], GENESIS_HASH
    stored = datetime(2026, 12, 6, tzinfo=timezone.utc)
    for n in range(count):
        body = {**sample_statement(n), "id": str(uuid.uuid4()), "stored": "2026-12-06T00:00:00.000Z"}
        draft = EventRecord(n + 1, uuid.uuid4(), "default", "statement", uuid.uuid4(),
                            stored + timedelta(microseconds=n), msgspec.json.encode(body), prev, b"")
        digest = record_hash(draft)
        records.append(msgspec.structs.replace(draft, hash=digest))
        prev = digest
    return records


def measure_iri() -> tuple[float, float]:
    strict, loose = re.compile(IRI_PATTERN).match, re.compile(LOOSE_PATTERN).match

    def with_(match):
        return lambda: [match(iri) for iri in IRIS]

    return cpu_us(with_(strict), 20_000), cpu_us(with_(loose), 20_000)


def measure_relay(records: list[EventRecord]) -> tuple[float, float]:
    def build(strip: bool):
        def run() -> None:
            formatter = StoredFormatter()
            for record in records:
                message = event_message(record, formatter)
                if strip:
                    headers = dict(message.headers)
                    del headers[PREV_HASH_HEADER]
                    message = OutgoingMessage(message.subject, message.data, headers)
                hpub_frame(message)
        return run

    # The stripped variant pays a dict copy the relay never made: subtract it.
    def copy_only() -> None:
        formatter = StoredFormatter()
        for record in records:
            message = event_message(record, formatter)
            headers = dict(message.headers)
            OutgoingMessage(message.subject, message.data, headers)

    def plain_only() -> None:
        formatter = StoredFormatter()
        for record in records:
            event_message(record, formatter)

    per = len(records)
    with_header = cpu_us(build(False), 5) / per
    without = cpu_us(build(True), 5) / per - (cpu_us(copy_only, 5) - cpu_us(plain_only, 5)) / per
    return with_header, without


def measure_anchor_check(records: list[EventRecord]) -> float:
    return cpu_us(lambda: verify_chain(records), 3) / len(records)


def measure_middlewares() -> float:
    budget = SheddingBudget(queue_statements=50_000, loop_lag_s=0.2)
    headers = [("Host", "127.0.0.1:8080"), ("Authorization", "Basic YmVuY2g6c2VjcmV0"),
               ("X-Experience-API-Version", "1.0.3"), ("Content-Type", "application/json"),
               ("Content-Length", "61234"), ("User-Agent", "Python/3.11 aiohttp/3.11")]

    def per_request() -> None:
        overload_reason(budget, 1200, 0.004, 0)
        unstorable_part("/xapi/statements", [], headers)

    return cpu_us(per_request, 50_000) / STATEMENTS_PER_REQUEST


async def measure_read(url: str, count: int) -> float:
    """CPU µs per event of reading ``count`` events (the anchor check's read)."""
    import asyncpg

    from lrs.store.log_reader import read_events_after

    conn = await asyncpg.connect(url)
    try:
        head = await conn.fetchval("SELECT position FROM log_head WHERE singleton")
        start = max(0, head - count)
        started = time.process_time()
        records = await read_events_after(conn, start, count)
        return (time.process_time() - started) / max(1, len(records)) * 1e6
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="alternated repeats; medians are reported")
    parser.add_argument("--events", type=int, default=2000, help="events per relay / anchor-check sample")
    parser.add_argument("--database-url", help="a PostgreSQL with an LRS event log, to time the anchor check's read")
    parser.add_argument("--record", action="store_true", help="write bench/results/ingest-attribution-<time>.json")
    args = parser.parse_args()
    records = chain(args.events)
    samples: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        strict, loose = measure_iri()
        with_header, without = measure_relay(records)
        for key, value in (("iri_rfc3987", strict), ("iri_loose_before", loose), ("relay_with_prev_hash", with_header),
                           ("relay_without_prev_hash", without), ("anchor_check", measure_anchor_check(records)),
                           ("middlewares_new", measure_middlewares())):
            samples.setdefault(key, []).append(value)
        if args.database_url:
            samples.setdefault("anchor_read", []).append(asyncio.run(measure_read(args.database_url, args.events)))
    median = {key: round(statistics.median(values), 3) for key, values in samples.items()}
    rows = [
        {"piece": "IRI grammar (RFC 3987 vs the loose pattern before), 5 IRIs a statement",
         "extra_cpu_us_per_statement": round(median["iri_rfc3987"] - median["iri_loose_before"], 3)},
        {"piece": "relay: Lrs-Prev-Hash header (issue 13)",
         "extra_cpu_us_per_statement": round(median["relay_with_prev_hash"] - median["relay_without_prev_hash"], 3)},
        {"piece": "anchor writer: chain check before signing, hashing (issue 13, this branch)",
         "extra_cpu_us_per_statement": median["anchor_check"]},
        {"piece": "new middlewares (shedding check, NUL guard) per request / 100",
         "extra_cpu_us_per_statement": median["middlewares_new"]},
    ]
    if "anchor_read" in median:
        rows.append({"piece": "anchor writer: reading the events it checks from PostgreSQL (client CPU)",
                     "extra_cpu_us_per_statement": median["anchor_read"]})
    result = {
        "benchmark": "ingest-attribution",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "machine": platform.platform(),
        "repeat": args.repeat, "events": args.events,
        "cpu_us_medians": median, "rows": rows,
    }
    for row in rows:
        print(f"{row['extra_cpu_us_per_statement']:8.3f} µs/statement  {row['piece']}")
    if args.record:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"ingest-attribution-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
