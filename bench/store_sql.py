"""Run SQL statements (arguments) on a bench/bulk_store.py store and print the rows."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bulk_store as gen  # noqa: E402


async def main(data: str, statements: list[str]) -> None:
    pg = gen.server(Path(data))
    await pg.start()
    try:
        conn = await asyncpg.connect(pg.url_for(gen.DATABASE))
        for sql in statements:
            for row in await conn.fetch(sql):
                print(" | ".join(str(v) for v in row.values()))
        await conn.close()
    finally:
        await pg.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
