"""CPU of the competency queries that read stored learner states.

Since format 3 (branch proj-slim) a stored state holds no competency: the
decode folds each one again from the learner's evidence, so every state a
query reads costs a fold.  Two queries read states: a learner's page
(``GET /competency/learners/{learner}``: ``queries.learner_view``, one state)
and a unit's learners (``GET /competency/units/{unit}/learners`` and the
report: ``queries.learner_standings``, the states of a page of up to 100
learners in progress).  This folds ``--learners`` states of about
``--per-learner`` statements each (``bench/projection.py``'s generator,
every statement evidence), stores them in a fresh database with the
checkout's own encoder, and calls both queries against PostgreSQL, timing
this process's CPU (``time.process_time``: the query's Python, asyncpg and the
decode; PostgreSQL's own CPU is not in it and did not change): the best of
``--repeat`` passes, per learner read.

Runs the code of ``--tree`` (default: the checkout it lives in) with the
interpreter it is started with, so the same file measures two checkouts:

    D=/work/benchdata/NAME/read; rm -rf $D
    /work/wt/base/.venv/bin/python bench/competency_read.py --tree /work/wt/base --data-dir $D/base --per-learner 10
    .venv/bin/python bench/competency_read.py --data-dir $D/branch --per-learner 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--tree", default=str(Path(__file__).resolve().parent.parent))
_parser.add_argument("--data-dir", required=True)
_parser.add_argument("--learners", type=int, default=200)
_parser.add_argument("--per-learner", type=int, default=10)
_parser.add_argument("--repeat", type=int, default=5)
_parser.add_argument("--seed", type=int, default=1)
ARGS = _parser.parse_args()
sys.path.insert(0, ARGS.tree)
sys.path.insert(0, os.path.join(ARGS.tree, "bench"))

import asyncpg  # noqa: E402

from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
from projection import statement  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.codec import FORMAT, encode_state  # noqa: E402
from projections.competency.policy import fold, interpret  # noqa: E402
from projections.competency.queries import learner_standings, learner_view  # noqa: E402
from projections.units.reads import UnitLearner  # noqa: E402


def _states(catalog, learners: int, statements: int, seed: int) -> list:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    events: dict[str, list] = {}
    for _ in range(statements):
        meaning = interpret(json.loads(statement(rng, learners, 1.0)), catalog)
        if meaning is not None:
            events.setdefault(meaning.learner, []).append(meaning)
    return [fold(learner, items, catalog) for learner, items in sorted(events.items())]


async def _best_cpu_us(call, reads: int, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        await call()
        best = min(best, time.process_time() - started)
    return round(best / reads * 1e6, 1)


async def main() -> dict:
    catalog = load_catalog()
    states = _states(catalog, ARGS.learners, ARGS.learners * ARGS.per_learner, ARGS.seed)
    pg = EmbeddedPostgres(Path(ARGS.data_dir))
    await pg.start()
    try:
        await ensure_database(pg.url_for("postgres"), "reads")
        pool = await asyncpg.create_pool(pg.url_for("reads"), min_size=1, max_size=1)
        try:
            await migrate(pool)
            await pool.copy_records_to_table(
                "competency_learners", columns=["tenant", "learner", "state", "position"],
                records=[("default", s.learner, encode_state(s), 1) for s in states],
            )
            await pool.execute("VACUUM ANALYZE competency_learners")
            program = catalog.programs[0]
            learners = [s.learner for s in states]

            async def pages() -> None:
                async with pool.acquire() as conn:
                    for start in range(0, len(learners), 100):
                        page = [UnitLearner(learner, "u", "in_progress", None) for learner in learners[start:start + 100]]
                        await learner_standings(conn, catalog, "default", program, page)

            async def views() -> None:
                for learner in learners:
                    assert await learner_view(pool, catalog, "default", learner) is not None

            await views()  # warm: prepared statements, caches
            return {
                "tree": ARGS.tree, "format": FORMAT, "learners": len(states),
                "statements_a_learner": round(sum(len({e.statement_id for e in s.evidence}) for s in states) / len(states), 1),
                "competencies_a_learner": round(sum(len(s.competencies) for s in states) / len(states), 1),
                "learner_view_cpu_us": await _best_cpu_us(views, len(learners), ARGS.repeat),
                "standings_page_cpu_us_a_learner": await _best_cpu_us(pages, len(learners), ARGS.repeat),
                "load": os.getloadavg()[0],
            }
        finally:
            await pool.close()
    finally:
        await pg.stop()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())), flush=True)
