"""Text keys in byte order for the audit digests, whatever the database's collation.

A digest hashes rows in their keys' order, so that order must be the same
in every database that holds the same rows: the embedded server's (created
``--locale=C``, text sorted as bytes), an external PostgreSQL created with a
language's collation (``en_US.UTF-8`` sorts ``amy`` before ``Zed``), or the
cluster an auditor restores a dump into.  Where the database's collation is
not already byte order, each text key is sorted ``COLLATE "C"``; where it
is, nothing is added, so the primary keys' indexes still give the order
(PostgreSQL sorts again for an explicit ``COLLATE "C"`` even in a C
database).
"""

from __future__ import annotations

import asyncpg

__all__ = ["BYTES", "byte_order"]

BYTES = ' COLLATE "C"'
# datlocprovider is PostgreSQL 15's (absent before: libc); 'c' is libc.
SELECT_COLLATION = """
SELECT datcollate, coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') AS provider
FROM pg_database d WHERE datname = current_database()
"""


async def byte_order(conn: asyncpg.Connection) -> str:
    """What follows each text key of a digest's ``ORDER BY`` on ``conn``'s
    database: nothing where its collation is C or POSIX (libc), else
    :data:`BYTES`."""
    row = await conn.fetchrow(SELECT_COLLATION)
    return "" if row["provider"] == "c" and row["datcollate"] in ("C", "POSIX") else BYTES
