"""PostgreSQL transactions and CPU per statement of first sights, in one
process: two in-process services ("workers": each its own key cache,
Statement writer and pools) on one embedded PostgreSQL, single-statement
POSTs from concurrent clients spread over both, sealing on (or off with
``--clear``).  Three phases, each measured apart:

- ``new``: every statement names a learner never named before;
- ``other worker's``: learners named in ``new``, each POSTed at random to
  either service (about half are known to PostgreSQL but not to the
  service that receives them);
- ``again``: the same learners once more, at random (a service has cached
  those it received before; about a quarter are still the other's only).

Counts (where the checkout has them) the key statements of their own
(``LearnerKeys._load_or_create``) and the requests the group commit refused
for a key taken meanwhile (``LearnerKeys.taken``).  CPU: this process (both
services and the clients) and PostgreSQL's processes, psutil.

    python bench/first_sight_transactions.py --label this
    python bench/first_sight_transactions.py --tree /work/wt/base --label base
    python bench/first_sight_transactions.py --clear --label clear
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _TREE)

import asyncpg  # noqa: E402
import psutil  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from lrs.config import Settings  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import create_app  # noqa: E402
from lrs.store import learner_keys  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CREDENTIAL = "bench:bench-secret-value"
COUNTS: collections.Counter[str] = collections.Counter()


def _count(name: str, method):  # type: ignore[no-untyped-def]
    if asyncio.iscoroutinefunction(method):
        async def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            COUNTS[name] += 1
            return await method(*args, **kwargs)
    else:
        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            COUNTS[name] += 1
            return method(*args, **kwargs)
    return counted


learner_keys.LearnerKeys._load_or_create = _count("key statements", learner_keys.LearnerKeys._load_or_create)
if hasattr(learner_keys.LearnerKeys, "taken"):
    learner_keys.LearnerKeys.taken = _count("refused for a key taken", learner_keys.LearnerKeys.taken)


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + getattr(times, "children_user", 0) + getattr(times, "children_system", 0)
    return total


async def main_async(args: argparse.Namespace) -> int:
    headers = {"Authorization": "Basic " + base64.b64encode(CREDENTIAL.encode()).decode(),
               "X-Experience-API-Version": "1.0.3"}
    phases = []
    with tempfile.TemporaryDirectory(prefix="first-sight-", dir="/tmp") as scratch:
        server = EmbeddedPostgres(Path(scratch) / "pg")
        url = await server.start()
        try:
            settings = Settings(database_url=url, frameworks_dir=Path(scratch) / "frameworks", nats_url=None,
                                relay_enabled=False, bootstrap_credential=CREDENTIAL,
                                privacy_key_file=Path(scratch) / "privacy-key", seal_personal_data=not args.clear)
            apps = [create_app(settings, database_url=url, nats_url=None) for _ in range(2)]
            async with TestServer(apps[0]) as one, TestClient(one) as first, \
                    TestServer(apps[1]) as two, TestClient(two) as second:
                conn = await asyncpg.connect(url)
                clients = (first, second)
                count = args.clients * args.per_client

                async def post(learner: int, turn: int) -> None:
                    body = {"id": str(uuid.uuid4()), "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
                            "actor": {"mbox": f"mailto:learner{learner}@agency.example.gov", "name": "A Learner"},
                            "object": {"id": "http://example.gov/course/1"}}
                    response = await clients[turn % 2].post("/xapi/statements", json=body, headers=headers)
                    assert response.status == 200, await response.text()

                async def phase(name: str, learners: list[int], turns: list[int]) -> None:
                    queue = iter(range(len(learners)))

                    async def client() -> None:
                        for n in queue:
                            await post(learners[n], turns[n])

                    COUNTS.clear()
                    xact = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                    pg = [server.pid, *(c.pid for c in psutil.Process(server.pid).children())]
                    before = (await conn.fetchval(xact), _cpu([os.getpid()]), _cpu(pg))
                    await asyncio.gather(*(client() for _ in range(args.clients)))
                    pg = [server.pid, *(c.pid for c in psutil.Process(server.pid).children())]
                    after = (await conn.fetchval(xact), _cpu([os.getpid()]), _cpu(pg))
                    result = {
                        "phase": name, "statements": len(learners),
                        "transactions_per_statement": round((after[0] - before[0]) / len(learners), 3),
                        "cpu_us_per_statement_services_and_clients": round((after[1] - before[1]) / len(learners) * 1e6, 1),
                        "cpu_us_per_statement_postgresql": round((after[2] - before[2]) / len(learners) * 1e6, 1),
                        **{k: v for k, v in COUNTS.items()},
                    }
                    print(json.dumps(result), flush=True)
                    phases.append(result)

                import random
                draw = random.Random(1)
                await phase("warm-up", list(range(10**6, 10**6 + 200)), list(range(200)))
                learners = list(range(count))
                await phase("new", learners, list(range(count)))
                await phase("other worker's", draw.sample(learners, count), [draw.randrange(2) for _ in range(count)])
                await phase("again", draw.sample(learners, count), [draw.randrange(2) for _ in range(count)])
                await conn.close()
        finally:
            await server.stop()
    record = {
        "benchmark": "first_sight_transactions",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/first_sight_transactions.py " + " ".join(sys.argv[1:]),
        "tree": _TREE, "sealed": not args.clear, "clients": args.clients,
        "load_average": os.getloadavg(), "phases": phases,
    }
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=60)
    parser.add_argument("--clear", action="store_true", help="sealing off (LRS_SEAL_PERSONAL_DATA=false)")
    parser.add_argument("--tree", help="the checkout whose service to run (default: this one)")
    parser.add_argument("--label", default="")
    parser.add_argument("--output")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
