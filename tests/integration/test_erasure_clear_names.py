"""An erasure is refused when Statements stored in clear name the learner
(lrs/store/erasure.py): as actor, as a related agent, and as the authority,
whose related agent row statement_keys no longer holds
(lrs.store.group_columns.key_literal), so statements.authority_key finds it."""

from __future__ import annotations

import uuid

from lrs.ingest.prepare import prepare_statements
from lrs.service import migrate
from lrs.store import StatementWriter, create_pool
from lrs.store.erasure import names_in_clear

APP = {"objectType": "Agent", "mbox": "mailto:app@example.com"}
LAN = {"objectType": "Agent", "mbox": "mailto:lan@example.org"}


def statement(actor: dict, **fields: object) -> dict:
    return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": "http://example.com/v/did"},
            "object": {"id": "http://example.com/a"}, **fields}


async def test_a_learner_named_in_clear_as_actor_related_agent_or_authority_is_found(database_url: str) -> None:
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        other = {"mbox": "mailto:other@example.org"}
        for tenant, body, authority in (
            ("actor", statement(LAN), APP),
            ("instructor", statement(other, context={"instructor": LAN}), APP),
            ("authority", statement(other), LAN),
            ("none", statement(other), APP),
        ):
            await writer.append(tenant, prepare_statements([body], version="1.0.3", authority=authority,
                                                           new_id=uuid.uuid4))
        await writer.close()
        async with pool.acquire() as conn, conn.transaction():
            found = {tenant: await names_in_clear(conn, tenant, "mbox:" + LAN["mbox"])
                     for tenant in ("actor", "instructor", "authority", "none")}
        assert found == {"actor": True, "instructor": True, "authority": True, "none": False}
    finally:
        await pool.close()
