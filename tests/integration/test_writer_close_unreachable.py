"""Closing a shared log's writer while PostgreSQL no longer answers: its last
commit announcement (lrs.store.commit_notifications.CommitAnnouncer) is given
up after the close timeout instead of waiting for a connection or an answer
that does not come (asyncpg's 60 s connect timeout, or no end at all)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from structlog.testing import capture_logs

from lrs.store.pool import close_pool, create_statement_pool
from lrs.store.writer import StatementWriter
from tests.integration.test_commit_notifications import _batch


class SilencingProxy:
    """A TCP proxy to PostgreSQL that, once ``silence()`` is called, forwards
    nothing more and answers no new connection: a database host gone quiet
    (not one refusing connections, which fails at once)."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        host, port = query.get("host", parts.hostname or "127.0.0.1"), int(query.get("port", parts.port or 5432))
        # PostgreSQL's Unix socket (the embedded server's), or its TCP port
        self._target = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        self._url = f"{user}127.0.0.1:{{port}}"
        self._parts = parts
        self._silent = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The database's URL through this proxy."""
        return urlunsplit(self._parts._replace(netloc=self._url.format(port=self.port), query=""))

    def silence(self) -> None:
        self._silent = True

    def speak(self) -> None:
        """Forward again (the host answers again)."""
        self._silent = False

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self._silent:
                writer.write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self._silent:
            await reader.read()  # holds the connection, answers nothing
            return
        if isinstance(self._target, str):
            up_reader, up_writer = await asyncio.open_unix_connection(self._target)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.append(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


@contextlib.asynccontextmanager
async def writer_through(proxy: SilencingProxy, pool: asyncpg.Pool) -> AsyncIterator[tuple[StatementWriter, asyncpg.Pool]]:
    """A shared log's writer whose group pool goes through ``proxy``, started."""
    await proxy.start()
    groups = await create_statement_pool(proxy.url, application_name="lrs-writer-silenced", max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0, shared_log=True, group_pool=groups, announce_every_s=30.0)
    try:
        await writer.start()
        yield writer, groups
    finally:
        groups.terminate()
        await proxy.close()


async def test_closing_a_writer_with_the_database_silent_gives_its_last_announcement_up_in_time(
    pool: asyncpg.Pool, database_url: str
) -> None:
    proxy = SilencingProxy(database_url)
    async with writer_through(proxy, pool) as (writer, _groups):
        await writer.append("default", _batch(2))  # carries the announcement
        await writer.append("default", _batch(1))  # within the interval: to be announced alone, at close at last
        proxy.silence()
        loop = asyncio.get_running_loop()
        began = loop.time()
        with capture_logs() as logged:
            await asyncio.wait_for(writer.close(), 30)  # before: no end (a statement on a silent connection)
        assert loop.time() - began < 10  # the close timeout (2 s), far below asyncpg's 60 s
        assert [e["event"] for e in logged if e["event"].startswith("commit_notification")] == [
            "commit_notification.not_sent_at_close"]
    assert await pool.fetchval("SELECT position FROM log_head") == 3  # committed; the relay's poll finds it


async def test_closing_the_pools_with_the_database_silent_ends_in_time(pool: asyncpg.Pool, database_url: str) -> None:
    """After the writer, a worker's shutdown closes its pools (lrs.http.app):
    asyncpg's Pool.close waits for PostgreSQL to answer each connection's
    Terminate, so with the host gone quiet it had no end either."""
    proxy = SilencingProxy(database_url)
    async with writer_through(proxy, pool) as (writer, groups):
        await writer.append("default", _batch(1))  # carries the announcement: nothing left to send at close
        proxy.silence()
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(writer.close(), 30)
        began = loop.time()
        await asyncio.wait_for(close_pool(groups, timeout_s=1.0), 30)  # before: Pool.close had no end
        assert loop.time() - began < 5
        assert groups.is_closing()


async def test_closing_a_writer_holding_a_begun_transaction_with_the_database_silent_ends_in_time(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """A COMMIT whose client will be back begins the next group's transaction
    and the writer keeps its connection (lrs.store.writer, begun_hold_s): at
    close, that transaction is rolled back.  With the host gone quiet the
    ROLLBACK is never answered; the close must not wait for asyncpg's 60 s
    command timeout."""
    proxy = SilencingProxy(database_url)
    async with writer_through(proxy, pool) as (writer, _groups):
        client = object()
        for _ in range(2):
            arrival = writer.arrival(client)  # a client on a kept-alive connection, in lock-step
            try:
                await writer.append("default", _batch(1), arrival=arrival)
            finally:
                arrival.close()
        assert writer._held is not None  # the next group's transaction is begun
        proxy.silence()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(writer.close(), 30)  # before: ROLLBACK waited for the 60 s command timeout
        assert loop.time() - began < 10
    assert await pool.fetchval("SELECT position FROM log_head") == 2


async def test_a_begun_transaction_nobody_came_for_with_the_database_silent_does_not_stop_the_writer(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The begun transaction nobody comes for is rolled back after
    begun_hold_s by the writer's own task: a ROLLBACK the silent host never
    answers must not keep the task (and every request queued meanwhile)
    waiting for asyncpg's 60 s command timeout."""
    proxy = SilencingProxy(database_url)
    async with writer_through(proxy, pool) as (writer, _groups):
        writer._begun_hold_s = 0.2
        client = object()
        arrival = writer.arrival(client)
        try:
            await writer.append("default", _batch(1), arrival=arrival)
        finally:
            arrival.close()
        assert writer._held is not None
        proxy.silence()
        await asyncio.sleep(0.5)  # the hold is over: the task rolls back on the silent connection
        proxy.speak()
        # a request now reaches the writer's task within the bound and commits on a new connection
        await asyncio.wait_for(writer.append("default", _batch(1)), 10)
        await asyncio.wait_for(writer.close(), 10)
