"""The audit digest does not depend on the database's collation.

The embedded server's databases sort text as bytes (``--locale=C``); an
external PostgreSQL, or the cluster an auditor restores a dump into, is
often created with a language's collation (``en_US.UTF-8``), under which
``ORDER BY learner`` puts ``amy`` before ``Zed``.  The same projection
copied row for row into a database of each collation must digest alike.
The server needs the ``en_US.UTF-8`` locale (``.ci/run`` generates it
before the server starts).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from lrs.service import migrate
from lrs.store import StatementWriter
from projections.competency.store import CompetencyProjection, digest
from projections.runner import ProjectionRunner
from projections.units.roster import parse_json
from projections.units.store import load_roster
from tests.conftest import with_database
from tests.integration.competency_statements import CATALOG, FAILED, MODULES, course_statement, write

MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
# Whose order differs between the collations: upper case first in bytes, not in English.
NAMES = {1: "Zed", 2: "amy", 3: "Bob"}
UNITS = [
    {"id": "Ministry", "kind": "ministry", "name": "Ministry"},
    {"id": "agency", "parent": "Ministry", "kind": "agency", "name": "Agency"},
    {"id": "Bureau", "parent": "Ministry", "kind": "agency", "name": "Bureau"},
]
# Every table the digest reads.
TABLES = (
    "projection_checkpoints", "competency_learners", "competency_states", "competency_certifications",
    "competency_mastery_mismatches", "unit_certified", "units", "unit_tree", "roster_memberships",
    "unit_headcounts", "units_dropped_learners", "unit_series_heads", "unit_series_certs",
)


def by_name(n: int, body: dict) -> dict:
    body["actor"] = {"account": {"homePage": "https://sso.example.gov.vn", "name": NAMES[n]}}
    return body


async def copy_into(source: asyncpg.Pool, url: str) -> None:
    """The digested tables of ``source``, row for row, into ``url``'s (triggers off)."""
    target = await asyncpg.connect(url)
    try:
        await target.execute("SET session_replication_role = replica")
        async with source.acquire() as conn:
            for table in TABLES:
                data = io.BytesIO()
                await conn.copy_from_table(table, output=data, format="binary")
                data.seek(0)
                await target.execute(f"DELETE FROM {table}")
                await target.copy_to_table(table, source=data, format="binary")
    finally:
        await target.close()


@pytest.fixture
async def collated(postgres_server: str) -> AsyncIterator[dict[str, str]]:
    """Two empty migrated databases: text in byte order, and in English order."""
    names = {collation: f"lrs_test_{uuid.uuid4().hex[:16]}" for collation in ("C", "en_US.UTF-8")}
    urls = {collation: with_database(postgres_server, name) for collation, name in names.items()}
    try:
        admin = await asyncpg.connect(postgres_server)
        try:
            for collation, name in names.items():
                await admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
                                    f"LC_COLLATE '{collation}' LC_CTYPE '{collation}'")
        except asyncpg.PostgresError as exc:
            pytest.fail(f"the test server cannot create a {collation} database ({exc}): generate the locale "
                        "before it starts (`localedef -i en_US -f UTF-8 en_US.UTF-8`, as .ci/run does)")
        finally:
            await admin.close()
        for url in urls.values():
            await migrate(url)
        yield urls
    finally:
        admin = await asyncpg.connect(postgres_server)
        try:
            for name in names.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_the_same_projection_digests_alike_in_byte_order_and_in_english_order(
    pool: asyncpg.Pool, writer: StatementWriter, collated: dict[str, str]
) -> None:
    lenient = by_name(2, course_statement(2, "searching", FAILED, 100, 0.3))
    lenient["context"] = {"platform": "MobiEdu", "extensions": {MASTERY: 0.25}}
    await write(writer, *(by_name(n, course_statement(n, m, v, i)) for n in (1, 3) for i, (m, v) in enumerate(MODULES)),
                lenient)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await runner.catch_up()
    keys = {r["learner"].rsplit("|", 1)[-1]: r["learner"] for r in await pool.fetch("SELECT learner FROM competency_learners")}
    await load_roster(pool, "default", parse_json({"units": UNITS, "memberships": [
        {"learner": keys["Zed"], "unit": "agency", "valid_from": (NOW - timedelta(days=30)).isoformat()},
        {"learner": keys["amy"], "unit": "Bureau", "valid_from": (NOW - timedelta(days=30)).isoformat()},
        {"learner": keys["Bob"], "unit": "Bureau", "valid_from": (NOW - timedelta(days=30)).isoformat()},
    ]}), now=NOW)
    await runner.catch_up()
    for table in ("competency_certifications", "competency_mastery_mismatches", "unit_certified", "unit_series_certs"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") > 0, table

    orders, digests = {}, {}
    for collation, url in collated.items():
        await copy_into(pool, url)
        conn = await asyncpg.connect(url)
        try:
            orders[collation] = [r["learner"] for r in await conn.fetch(
                "SELECT learner FROM competency_learners ORDER BY learner")]
            digests[collation] = await digest(conn)
        finally:
            await conn.close()
    assert orders["C"] != orders["en_US.UTF-8"]  # the collations do order these learners apart
    assert digests["C"] == digests["en_US.UTF-8"] == await digest(pool)
