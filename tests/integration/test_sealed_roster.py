"""Rosters, identity links and unit totals with personal data sealed
(docs/privacy.md), on a real PostgreSQL: the roster and identity events name
learners by pseudonym, with their clear keys sealed; the competency
projection joins rostered learners to their sealed Statements; an erased
learner counts in the unit totals as LRS_ERASED_LEARNERS_IN_TOTALS says,
live and in a replay alike; an erasure deletes the learner's attachments
and no one else's."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.payload_codec import open_payload
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.identities import change_links
from lrs.store.learner_keys import LearnerKeys
from lrs.store.learner_refs import open_refs
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from projections.units.roster import RosterError, parse_json
from projections.events import LogEvent
from projections.units.series_store import series_counts, series_counts_daily
from projections.units.reads import unit_counts
from projections.units.store import load_roster
from tests.integration.competency_statements import AUTHORITY, CATALOG, MODULES, PROGRAM, course_statement

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
LAN = "mbox:mailto:cs1@example.gov.vn"  # course_statement(1, ...) is hers
LAN_LMS = "account:https://lms.example.gov.vn|lan.nguyen"
MINH = "mbox:mailto:cs2@example.gov.vn"
UNITS = [
    {"id": "mic", "kind": "ministry", "name": "Ministry"},
    {"id": "mic-a", "parent": "mic", "kind": "agency", "name": "Agency A"},
]
ROSTER = {
    "units": UNITS,
    "memberships": [
        {"learner": key, "unit": "mic-a", "valid_from": (NOW - timedelta(days=30)).isoformat()} for key in (LAN, MINH)
    ],
}


@pytest.fixture
def keys(pool: asyncpg.Pool) -> LearnerKeys:
    return LearnerKeys(pool, MasterKey(bytes(range(32))))


async def write_sealed(keys: LearnerKeys, writer: StatementWriter, *bodies: dict[str, Any]) -> None:
    for body in bodies:  # as POST /xapi/statements stores them with sealing on
        sealed = await keys.seal_statements("default", [body], AUTHORITY)
        await writer.append("default", prepare_statements(sealed.statements, version="1.0.3",
                                                          authority=sealed.authority, new_id=uuid.uuid4),
                            key_epoch=sealed.epoch, key_refs=sealed.refs, ciphertexts=sealed.ciphertexts)
        keys.stored(sealed)


def as_lms_account(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "actor": {"account": {"homePage": "https://lms.example.gov.vn", "name": "lan.nguyen"}}}


async def payloads(pool: asyncpg.Pool, *event_types: str) -> list[bytes]:
    rows = await pool.fetch("SELECT payload FROM events WHERE event_type = ANY($1::text[]) ORDER BY position",
                            list(event_types))
    return [open_payload(bytes(r["payload"])) for r in rows]  # statements are stored compressed


async def certified(pool: asyncpg.Pool) -> tuple[int, int]:
    async with pool.acquire() as conn:
        return await unit_counts(conn, "default", "mic", *PROGRAM, True)


async def test_roster_and_links_name_pseudonyms_and_the_projection_joins_them(
    pool: asyncpg.Pool, writer: StatementWriter, keys: LearnerKeys
) -> None:
    await load_roster(pool, "default", parse_json(ROSTER), now=NOW, learner_keys=keys)
    change = await change_links(pool, "default", "link", LAN, [LAN_LMS], now=NOW, learner_keys=keys)
    lan, lan_lms = keys.pseudonym_key("default", LAN), keys.pseudonym_key("default", LAN_LMS)
    assert (change.person, change.identifiers) == (lan, [lan_lms])
    # The log holds pseudonym keys and sealed clear keys, never the clear keys.
    logged = await payloads(pool, "roster", "identity")
    assert len(logged) == 2 and not [p for p in logged if b"cs1@" in p or b"cs2@" in p or b"lan.nguyen" in p]
    roster_event, link_event = (msgspec.json.decode(p) for p in logged)
    assert sorted(m["learner"] for m in roster_event["memberships"]) == sorted([lan, keys.pseudonym_key("default", MINH)])
    assert (link_event["person"], link_event["identifiers"]) == (lan, [lan_lms])
    assert await open_refs(keys, "default", {**roster_event["sealed"], **link_event["sealed"]}) == {
        lan: LAN, keys.pseudonym_key("default", MINH): MINH, lan_lms: LAN_LMS,
    }
    assert {r["learner"] for r in await pool.fetch("SELECT learner FROM roster_memberships")} == {
        lan, keys.pseudonym_key("default", MINH)}
    # A conflict names the keys as the caller gave them.
    with pytest.raises(Exception, match="lan.nguyen"):
        await change_links(pool, "default", "link", MINH, [LAN_LMS], now=NOW, learner_keys=keys)
    with pytest.raises(RosterError, match="account:https://lms.example.gov.vn\\|lan.nguyen"):
        await load_roster(pool, "default", parse_json({"memberships": [
            {"learner": LAN_LMS, "unit": "mic-a", "valid_from": NOW.isoformat()}]}), now=NOW, learner_keys=keys)

    # Half of Lan's evidence under her LMS account, half under her mbox: the
    # rostered person is certified, and counted in her unit.
    bodies = [course_statement(1, module, verb, minute) for minute, (module, verb) in enumerate(MODULES)]
    await write_sealed(keys, writer, *bodies[::2], *map(as_lms_account, bodies[1::2]))
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG, erased_in_totals="count"))
    await runner.catch_up()
    assert await certified(pool) == (2, 1)
    assert await digest(pool) == await replayed_digest(pool, "count")


async def replayed_digest(pool: asyncpg.Pool, policy: str) -> str:
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG, erased_in_totals=policy, replay_processes=1))
    assert await digest(pool) == live  # a replay gives the live digest
    return live


async def series_at(pool: asyncpg.Pool, moment: datetime) -> set[tuple[int, int]]:
    """The unit's series value at ``moment`` every way it is read: both
    clocks, from the per-day deltas (the period ending the next midnight) and
    from the intervals, with and without descendants."""
    found = set()
    day = moment.date() + timedelta(days=1)
    async with pool.acquire() as conn:
        for clock in ("achieved", "known"):
            found.update(await series_counts_daily(conn, "default", "mic", *PROGRAM, [day], clock))
            found.update(await series_counts(conn, "default", "mic", *PROGRAM, True, [moment], clock))
            found.update(await series_counts(conn, "default", "mic-a", *PROGRAM, False, [moment], clock))
    return found


async def series_agree(pool: asyncpg.Pool) -> None:
    """The per-day deltas the triggers keep give what the intervals give, day by day, on both clocks."""
    ends = [date.today() - timedelta(days=40) + timedelta(days=d) for d in range(0, 45, 3)]
    moments = [datetime.combine(d, datetime.min.time(), tzinfo=timezone.utc) - timedelta(microseconds=1) for d in ends]
    async with pool.acquire() as conn:
        for clock in ("achieved", "known"):
            assert await series_counts_daily(conn, "default", "mic", *PROGRAM, ends, clock) == await series_counts(
                conn, "default", "mic", *PROGRAM, True, moments, clock), clock


@pytest.mark.parametrize("policy, after", [("drop", (1, 0)), ("count", (2, 1))])
async def test_an_erased_learner_counts_in_the_unit_totals_as_the_policy_says(
    pool: asyncpg.Pool, writer: StatementWriter, keys: LearnerKeys, policy: str, after: tuple[int, int]
) -> None:
    await load_roster(pool, "default", parse_json(ROSTER), now=datetime.now(timezone.utc), learner_keys=keys)
    bodies = [course_statement(1, module, verb, minute) for minute, (module, verb) in enumerate(MODULES)]
    await write_sealed(keys, writer, *bodies)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG, erased_in_totals=policy))
    await runner.catch_up()
    assert await certified(pool) == (2, 1)
    await erase_learner(pool, keys, "default", {"mbox": "mailto:cs1@example.gov.vn"}, reason="request 17", by="test")
    await runner.catch_up()
    assert await certified(pool) == after
    # The unit's trend series follows the policy on both clocks: at "now" it
    # is the summary's totals; dropped, the learner counts at no moment.
    assert await series_at(pool, datetime.now(timezone.utc)) == {after}
    async with pool.acquire() as conn:  # a month before the erasure (valid time): dropped there too
        ((heads, _),) = await series_counts(conn, "default", "mic", *PROGRAM, True, [NOW], "achieved")
    assert heads == after[0]
    await series_agree(pool)
    live = await replayed_digest(pool, policy)
    assert await certified(pool) == after
    assert await series_at(pool, datetime.now(timezone.utc)) == {after}  # recounted in the replay
    await series_agree(pool)
    # Applying the erasure event again (a redelivery) changes nothing.
    event = await pool.fetchrow("SELECT position, tenant, event_type, payload FROM events WHERE event_type = 'erasure'")
    projection = CompetencyProjection(CATALOG, erased_in_totals=policy)
    async with pool.acquire() as conn, conn.transaction():
        await projection.apply_many(conn, [LogEvent(event["position"], event["tenant"], "erasure", bytes(event["payload"]))])
    assert await certified(pool) == after
    assert await series_at(pool, datetime.now(timezone.utc)) == {after}
    assert await digest(pool) == live
    # The digest covers the series: a delta off by one shows.
    await pool.execute("UPDATE unit_series_heads SET heads = heads + 1 WHERE ctid = (SELECT min(ctid) FROM unit_series_heads)")
    assert await digest(pool) != live


class _Blob:
    content_type = "text/plain"

    def __init__(self, data: bytes) -> None:
        self.data, self.sha2, self.length = data, hashlib.sha256(data).hexdigest(), len(data)

    def content_bytes(self) -> bytes:
        return self.data

    def iter_content(self, chunk_bytes: int = 65536) -> Any:
        yield self.data


def with_attachment(body: dict[str, Any], blob: _Blob) -> dict[str, Any]:
    return {**body, "attachments": [{
        "usageType": "http://id.tincanapi.com/attachment/certificate-of-completion", "display": {"en-US": "scan"},
        "contentType": blob.content_type, "length": blob.length, "sha2": blob.sha2,
    }]}


async def test_erasure_deletes_only_the_attachments_no_one_else_refers_to(
    pool: asyncpg.Pool, writer: StatementWriter, keys: LearnerKeys
) -> None:
    from lrs.store.attachments import save_attachments

    own, shared, others = _Blob(b"Lan's own scan"), _Blob(b"the course handbook"), _Blob(b"Minh's scan")
    await save_attachments(pool, "default", [own, shared, others])
    await write_sealed(
        keys, writer,
        with_attachment(course_statement(1, "searching", MODULES[0][1], 1), own),
        with_attachment(course_statement(1, "searching", MODULES[0][1], 2), shared),
        with_attachment(course_statement(2, "searching", MODULES[0][1], 3), shared),
        with_attachment(course_statement(2, "searching", MODULES[0][1], 4), others),
    )
    erasure = await erase_learner(pool, keys, "default", {"mbox": "mailto:cs1@example.gov.vn"}, reason="r", by="t")
    assert erasure.attachments == 1
    left = {r["sha2"] for r in await pool.fetch("SELECT sha2 FROM attachments")}
    assert left == {shared.sha2, others.sha2}


async def test_the_shared_attachment_question_reads_the_hash_index_not_the_tenant(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    from lrs.store.erasure import SELECT_SHARING

    # A tenant of many statements, a few with attachments.
    bodies = [course_statement(n % 50, "searching", MODULES[0][1], n) for n in range(2000)]
    bodies[::400] = [with_attachment(b, _Blob(str(i).encode())) for i, b in enumerate(bodies[::400])]
    await writer.append("default", prepare_statements(bodies, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))
    await pool.execute("ANALYZE events")
    await pool.execute("ANALYZE statements")
    plan = "\n".join(r[0] for r in await pool.fetch("EXPLAIN " + SELECT_SHARING, "default", _Blob(b"0").sha2))
    assert "events_attachment_hashes" in plan and "Seq Scan" not in plan, plan


async def test_a_learner_rostered_in_clear_is_not_erased(pool: asyncpg.Pool, writer: StatementWriter, keys: LearnerKeys) -> None:
    from lrs.store.erasure import ErasureRefused

    await load_roster(pool, "default", parse_json(ROSTER), now=NOW)  # before sealing: clear keys in the log
    await write_sealed(keys, writer, course_statement(1, "searching", MODULES[0][1], 1))
    with pytest.raises(ErasureRefused, match="roster memberships or identity links"):
        await erase_learner(pool, keys, "default", {"mbox": "mailto:cs1@example.gov.vn"}, reason="r", by="t")


async def test_erasing_a_person_erases_their_linked_identifiers_too(
    pool: asyncpg.Pool, writer: StatementWriter, keys: LearnerKeys
) -> None:
    await change_links(pool, "default", "link", LAN, [LAN_LMS], now=NOW, learner_keys=keys)
    await write_sealed(keys, writer, course_statement(1, "searching", MODULES[0][1], 1),
                       as_lms_account(course_statement(1, "searching", MODULES[0][1], 2)),
                       course_statement(2, "searching", MODULES[0][1], 3))
    erasure = await erase_learner(pool, keys, "default", {"mbox": "mailto:cs1@example.gov.vn"}, reason="r", by="t")
    assert erasure.linked == [keys.pseudonym("default", LAN_LMS)]
    stored = [msgspec.json.decode(p) for p in await payloads(pool, "statement")]
    homes = [s["actor"].get("account", {}).get("homePage") for s in await keys.open_statements("default", stored)]
    assert homes == ["https://lrs.invalid/erased", "https://lrs.invalid/erased", None]  # Minh's stays readable
    [link_event] = [msgspec.json.decode(p) for p in await payloads(pool, "identity")]
    assert set((await open_refs(keys, "default", link_event["sealed"])).values()) == {None}  # no clear key left
    assert msgspec.json.decode((await payloads(pool, "erasure"))[0])["linked"] == erasure.linked
