"""Statements from another LRS, oldest first, as a resumable source.

The first request is ``GET <statements>?ascending=true&limit=N[&since=T]``;
then each page's ``more`` link is followed until it is empty.  The cursor holds
the next ``more`` link and the ``stored`` of the last statement seen.  A
resumed run follows the saved ``more`` link; if the LRS no longer honours it
(``more`` links may expire) it asks again ``since`` the last stored time minus
one microsecond (``since`` is exclusive, and statements sharing that instant
must not be missed; the one seen again is stored once, ids being kept).

The requests carry the highest xAPI version both sides speak: 2.0.0 when the
source's About resource lists a 2.0 version, else 1.0.3 (also when it has no
About resource or cannot be read); ``xapi_version`` fixes it instead.  Asked
in 1.0.3, a 2.0 LRS may leave out or refuse what only 2.0 can express.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode, urljoin

import aiohttp

from connectors.framework.model import Chunk, Cursor, SourceItem
from connectors.framework.sink import (
    XAPI_VERSION,
    XAPI_VERSION_2,
    SinkFatal,
    SinkUnavailable,
    basic_authorization,
    error_message,
    failure_words,
    statements_endpoint,
)
from connectors.framework.retry_after import MAX_ASKED_WAIT_S, MAX_RETRY_AFTER_S, retry_after_delay

_EXPIRED_MORE = (400, 404, 410)


class LrsPullSource:
    name = "pull"
    progress_unit = "stmt"
    progress_total: int | None = None

    def __init__(
        self,
        base_url: str,
        key: str,
        secret: str,
        *,
        since: str | None = None,
        page_limit: int = 500,
        session: aiohttp.ClientSession,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = MAX_RETRY_AFTER_S,
        max_asked_wait: float = MAX_ASKED_WAIT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        xapi_version: str | None = None,
    ) -> None:
        if xapi_version not in (None, XAPI_VERSION, XAPI_VERSION_2):
            raise ValueError(f"xapi_version must be {XAPI_VERSION} or {XAPI_VERSION_2}, not {xapi_version!r}")
        self.endpoint = statements_endpoint(base_url)
        self.xapi_version = xapi_version  # None: ask the source's About resource first
        self.since = since
        self.page_limit = page_limit
        self._authorization = basic_authorization(key, secret)
        self._session = session
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._max_asked_wait = max_asked_wait
        self._sleep = sleep
        self._jitter = jitter

    def _query_url(self, since: str | None) -> str:
        params: dict[str, Any] = {"ascending": "true", "limit": str(self.page_limit)}
        if since:
            params["since"] = since
        return f"{self.endpoint}?{urlencode(params)}"

    async def chunks(self, cursor: Cursor | None) -> AsyncIterator[Chunk]:
        last_stored: str | None = cursor.get("last_stored") if cursor else None
        url: str | None
        if cursor is None:
            url = self._query_url(self.since)
        elif cursor.get("more"):
            url = cursor["more"]
            status, page = await self._get(url, tolerate=_EXPIRED_MORE)
            if status in _EXPIRED_MORE:
                url = self._query_url(_just_before(last_stored) if last_stored else self.since)
            else:
                chunk, url, last_stored = self._chunk(url, page, last_stored)
                yield chunk
        else:
            url = self._query_url(_just_before(last_stored) if last_stored else self.since)
        while url:
            _, page = await self._get(url)
            chunk, url, last_stored = self._chunk(url, page, last_stored)
            yield chunk

    def _chunk(self, url: str, page: Any, last_stored: str | None) -> tuple[Chunk, str | None, str | None]:
        if not isinstance(page, dict) or not isinstance(page.get("statements"), list):
            raise SinkFatal(f"{url} did not answer a StatementResult")
        statements = page["statements"]
        items = []
        for index, statement in enumerate(statements):
            stored = statement.get("stored") if isinstance(statement, dict) else None
            if isinstance(stored, str):
                last_stored = stored
            ref = f"stored {stored}" if stored else f"{url} [{index}]"
            items.append(SourceItem(ref, statement))
        more = page.get("more")
        next_url = urljoin(url, more) if isinstance(more, str) and more and statements else None
        cursor = {"more": next_url, "last_stored": last_stored}
        return Chunk(items, cursor, len(items)), next_url, last_stored

    async def _negotiate(self) -> str:
        """2.0.0 if the source's About resource lists a 2.0 version, else 1.0.3."""
        about = self.endpoint.rsplit("/", 1)[0] + "/about"
        try:
            async with self._session.get(about, headers={"Accept": "application/json"}) as response:
                versions = json.loads(await response.read()).get("version") if response.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError, AttributeError):
            versions = None
        if isinstance(versions, list) and any(isinstance(v, str) and v.startswith("2.0") for v in versions):
            return XAPI_VERSION_2
        return XAPI_VERSION

    async def _get(self, url: str, tolerate: tuple[int, ...] = ()) -> tuple[int, Any]:
        if self.xapi_version is None:
            self.xapi_version = await self._negotiate()
        failures = 0
        asked_wait = 0.0  # seconds waited because the source asked to come back later
        while True:
            try:
                async with self._session.get(
                    url,
                    headers={
                        "Authorization": self._authorization,
                        "X-Experience-API-Version": self.xapi_version,
                        "Accept": "application/json",
                    },
                ) as response:
                    status = response.status
                    body = await response.read()
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                failures += 1
                if failures >= self._max_attempts:
                    raise SinkUnavailable(f"source LRS unreachable after {failures} attempts: {failure_words(exc)}") from exc
                await self._backoff(failures)
                continue
            if status == 200:
                return status, json.loads(body)
            if status in tolerate:
                return status, None
            delay = retry_after_delay(status, retry_after, time.time(), cap=self._max_retry_after, draw=self._jitter())
            if delay is None and status == 429:  # throttled without saying for how long
                delay = min(self._backoff_cap, self._backoff_base) * self._jitter()
            if delay is not None:  # shedding or throttling: not a failed attempt
                if asked_wait + delay > self._max_asked_wait:
                    raise SinkUnavailable(f"source LRS still asked to wait (HTTP {status}) after {asked_wait:.0f}s", status)
                asked_wait += delay
                await self._sleep(delay)
                continue
            if status >= 500:
                failures += 1
                if failures >= self._max_attempts:
                    raise SinkUnavailable(f"source LRS answered HTTP {status} {failures} times")
                await self._backoff(failures)
                continue
            raise SinkFatal(f"source LRS answered HTTP {status} for {url}: {error_message(status, body)}")

    async def _backoff(self, failures: int) -> None:
        ceiling = min(self._backoff_cap, self._backoff_base * (2 ** (failures - 1)))
        await self._sleep(ceiling * self._jitter())


def _just_before(stored: str) -> str:
    try:
        when = datetime.fromisoformat(stored.replace("Z", "+00:00"))
    except ValueError:
        return stored
    return (when - timedelta(microseconds=1)).isoformat()
