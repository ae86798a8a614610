"""as_of on the known clock plans its count with nested loops off: that
setting must end with the count, not hold for the rest of the caller's
transaction, where the evidence of the learners folded again is looked up
by statement id (with nested loops off, by reading the whole event log)."""

from __future__ import annotations

from datetime import datetime, timezone

import asyncpg

from lrs.service import migrate
from projections.competency.catalog import load_catalog
from projections.competency.known_clock import certified_known_at
from projections.competency.model import RULE_VERSION
from projections.competency.queries import resolve_program

PROGRAM = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills"


async def test_the_counts_planner_settings_end_with_the_count(database_url: str) -> None:
    await migrate(database_url)
    catalog = load_catalog()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO projection_checkpoints (name, position, rule_version, catalog_digest)"
            " VALUES ('competency', 0, $1, $2)", RULE_VERSION, catalog.digest)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            before = await conn.fetchrow("SELECT current_setting('enable_nestloop') AS n,"
                                         " current_setting('plan_cache_mode') AS p")
            counts = await certified_known_at(conn, catalog, "default", "nowhere", resolve_program(catalog, PROGRAM, None),
                                              True, datetime(2025, 1, 1, tzinfo=timezone.utc), 0)
            after = await conn.fetchrow("SELECT current_setting('enable_nestloop') AS n,"
                                        " current_setting('plan_cache_mode') AS p")
        assert counts == (0, 0)
        assert (after["n"], after["p"]) == (before["n"], before["p"]) == ("on", "auto")
    finally:
        await conn.close()
