"""bench/live_apply_ab.py gives the competency tables the storage parameters
of one side's migrations and no others: what the other side's run left
(another parameter, another table) is reset first."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from live_apply_ab import give_storage  # noqa: E402

STORAGE = r"""
SELECT relname, reloptions FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname LIKE 'competency\_%' AND reloptions IS NOT NULL
ORDER BY relname
"""


async def test_a_side_is_measured_with_its_own_storage_parameters_only(pool: asyncpg.Pool, tmp_path: Path) -> None:
    migrations = tmp_path / "projections" / "competency" / "migrations"
    migrations.mkdir(parents=True)
    (migrations / "0117_hot.sql").write_text("-- a comment\nALTER TABLE competency_learners SET (fillfactor = 70);\n")
    async with pool.acquire() as conn:
        # as the other side's run left them
        await conn.execute("ALTER TABLE competency_learners SET (fillfactor = 90, toast_tuple_target = 4000)")
        await conn.execute("ALTER TABLE competency_certifications SET (fillfactor = 50)")
        await give_storage(conn, tmp_path)
        assert [tuple(r) for r in await conn.fetch(STORAGE)] == [("competency_learners", ["fillfactor=70"])]
