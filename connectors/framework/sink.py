"""The LRS sink: POST batches of statements to ``<base>/xapi/statements``.

Behaviour, in the order a response is handled:

* 200/204: every statement of the batch is accepted.
* 429, and 503 with ``Retry-After`` (load shedding): wait as asked (seconds or
  an HTTP date, at most ``max_retry_after`` plus jitter, see
  :mod:`connectors.framework.retry_after`; a 429 without it backs off), then
  send again.  This does not use up attempts: the LRS said when to come back
  and nothing was lost.  Only after ``max_asked_wait`` seconds of such waits
  for one request does the sink give up with :class:`SinkUnavailable`.
* other 5xx, connection errors and timeouts: exponential backoff with full
  jitter, up to ``max_attempts``; then :class:`SinkUnavailable`.
* 400, 409, 413: the LRS refuses a whole batch for one bad statement, so the
  batch is narrowed down.  When the LRS names the offending statement (a JSON
  path ``$[i]`` in a 400, or one of the batch's ids in a 409) that statement is
  rejected and the rest is sent again; otherwise the batch is split in halves
  until single statements remain.  A single statement refused is reported as a
  :class:`Rejection` with the LRS's message.
* 401/403 and anything else: :class:`SinkFatal` (wrong credentials or URL;
  retrying cannot help).

Re-sending is safe because statement ids are deterministic: the LRS accepts a
statement it already holds with the same content.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import aiohttp
import msgspec

from connectors.framework.model import JSON, Rejection
from connectors.framework.retry_after import (
    MAX_ASKED_WAIT_S,
    MAX_RETRY_AFTER_S,
    parse_retry_after,  # noqa: F401  (re-exported for the clients importing it from here)
    retry_after_delay,
)

XAPI_VERSION = "1.0.3"
XAPI_VERSION_2 = "2.0.0"
_PATH_INDEX = re.compile(r"\$\[(\d+)\]")
_MAX_REASON = 500


class SinkError(RuntimeError):
    """The sink cannot go on; the run stops at its last checkpoint."""


class SinkUnavailable(SinkError):
    """The LRS kept failing (5xx or unreachable) after every attempt.

    ``status`` is the last HTTP status, or None when the LRS was unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SinkFatal(SinkError):
    """The LRS refused in a way retrying cannot fix (credentials, URL)."""


class _StatementId(msgspec.Struct):
    id: object = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A statement on its way to the LRS, with where it came from.

    ``statement`` is a JSON object, or the JSON bytes of one as a
    ``msgspec.Raw`` (sent as they are, without decoding and encoding again)."""

    statement: JSON | msgspec.Raw
    ref: str

    @property
    def statement_id(self) -> str | None:
        if isinstance(self.statement, msgspec.Raw):  # only on the rare paths that need it
            try:
                value = msgspec.json.decode(self.statement, type=_StatementId).id
            except (msgspec.DecodeError, msgspec.ValidationError):
                return None
        else:
            value = self.statement.get("id")
        return value if isinstance(value, str) else None


@dataclass(slots=True)
class BatchOutcome:
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def request_version(item: Outgoing) -> str:
    """The ``X-Experience-API-Version`` a statement is sent with: 2.0.0 when
    its ``version`` is 2.x (an LRS accepts those only on 2.0 requests), else
    1.0.3.  Raw statements are 1.0.x (their producers decide, see
    connectors/ndjson/mapping.py)."""
    statement = item.statement
    if isinstance(statement, dict):
        version = statement.get("version")
        if isinstance(version, str) and version.startswith("2."):
            return XAPI_VERSION_2
    return XAPI_VERSION


def version_runs(batch: Sequence[Outgoing]) -> list[list[Outgoing]]:
    """``batch`` cut into consecutive runs of the same request version, in order."""
    runs: list[list[Outgoing]] = []
    last = None
    for item in batch:
        version = request_version(item)
        if version != last:
            runs.append([])
            last = version
        runs[-1].append(item)
    return runs


def failure_words(exc: BaseException) -> str:
    """One line saying why an LRS could not be reached, for people: the
    exception's repr names aiohttp's connection key, proxy and TLS fields."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no answer in time"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def statements_endpoint(base_url: str) -> str:
    """``https://host`` -> ``https://host/xapi/statements``; a URL that already
    ends in ``/xapi`` or ``/statements`` is completed or kept as it is."""
    base = base_url.rstrip("/")
    if base.endswith("/statements"):
        return base
    if base.endswith("/xapi"):
        return base + "/statements"
    return base + "/xapi/statements"


def basic_authorization(key: str, secret: str) -> str:
    """The ``Authorization`` header value for HTTP Basic auth."""
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode("ascii")


def error_message(status: int, body: bytes) -> str:
    """The LRS's message from an error body (JSON ``message``/``error`` or text)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("message", "error", "detail"):
            if isinstance(document.get(key), str):
                text = document[key]
                break
    return (text or f"HTTP {status}")[:_MAX_REASON]


class LrsSink:
    """POSTs batches to one LRS.  Use as ``async with LrsSink(...) as sink``."""

    def __init__(
        self,
        base_url: str,
        key: str,
        secret: str,
        *,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = MAX_RETRY_AFTER_S,
        max_asked_wait: float = MAX_ASKED_WAIT_S,
        request_timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.endpoint = statements_endpoint(base_url)
        self._authorization = basic_authorization(key, secret)
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._max_asked_wait = max_asked_wait
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep
        self._jitter = jitter
        self.requests = 0  # POSTs made, for tests and the summary
        self.retries = 0

    async def __aenter__(self) -> "LrsSink":
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, batch: Sequence[Outgoing]) -> BatchOutcome:
        """Deliver a batch; returns how many were accepted and which were rejected."""
        outcome = BatchOutcome()
        # One request per run of statements of the same xAPI version, in order.
        pending: list[list[Outgoing]] = version_runs(batch)[::-1]
        while pending:
            part = pending.pop()
            status, body = await self._post_until_answered(part)
            if status in (200, 204):
                outcome.accepted += len(part)
                continue
            message = error_message(status, body)
            if len(part) == 1:
                item = part[0]
                outcome.rejected.append(Rejection(item.statement_id, item.ref, status, message))
                continue
            culprit = _named_culprit(status, message, part)
            if culprit is not None:
                item = part[culprit]
                outcome.rejected.append(Rejection(item.statement_id, item.ref, status, message))
                rest = part[:culprit] + part[culprit + 1 :]
                if rest:
                    pending.append(rest)
                continue
            middle = len(part) // 2
            pending.append(part[middle:])
            pending.append(part[:middle])  # popped first: keeps source order
        return outcome

    async def _post_until_answered(self, part: list[Outgoing]) -> tuple[int, bytes]:
        """POST until the LRS gives an answer about the statements themselves
        (2xx, 400, 409, 413); throttling and outages are waited out here."""
        body = msgspec.json.encode([item.statement for item in part])
        version = request_version(part[0])
        failures = 0
        asked_wait = 0.0  # seconds waited because the LRS asked to come back later
        while True:
            try:
                status, headers, response = await self._post(body, version)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                failures += 1
                if failures >= self._max_attempts:
                    raise SinkUnavailable(
                        f"LRS unreachable after {failures} attempts: {failure_words(exc)}"
                    ) from exc
                await self._backoff(failures)
                continue
            if status in (200, 204, 400, 409, 413):
                return status, response
            delay = retry_after_delay(status, headers.get("Retry-After"), time.time(),
                                      cap=self._max_retry_after, draw=self._jitter())
            if delay is None and status == 429:  # throttled without saying for how long
                delay = self._backoff_ceiling(1) * self._jitter()
            if delay is not None:
                if asked_wait + delay > self._max_asked_wait:
                    raise SinkUnavailable(
                        f"LRS still asked to wait (HTTP {status}) after {asked_wait:.0f}s of waiting: "
                        f"{error_message(status, response)}",
                        status,
                    )
                asked_wait += delay
                self.retries += 1
                await self._sleep(delay)
                continue
            if status >= 500:
                failures += 1
                if failures >= self._max_attempts:
                    raise SinkUnavailable(
                        f"LRS answered HTTP {status} {failures} times: {error_message(status, response)}",
                        status,
                    )
                await self._backoff(failures)
                continue
            if status in (401, 403):
                raise SinkFatal(
                    f"LRS refused the credentials (HTTP {status}): {error_message(status, response)}"
                )
            raise SinkFatal(f"LRS answered HTTP {status} at {self.endpoint}: {error_message(status, response)}")

    async def _post(self, body: bytes, version: str = XAPI_VERSION) -> tuple[int, "aiohttp.typedefs.LooseHeaders", bytes]:
        assert self._session is not None, "use LrsSink as an async context manager"
        self.requests += 1
        async with self._session.post(
            self.endpoint,
            data=body,
            timeout=self._timeout,
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/json",
                "X-Experience-API-Version": version,
            },
        ) as response:
            return response.status, response.headers, await response.read()

    def _backoff_ceiling(self, failures: int) -> float:
        return min(self._backoff_cap, self._backoff_base * (2 ** (failures - 1)))

    async def _backoff(self, failures: int) -> None:
        self.retries += 1
        await self._sleep(self._backoff_ceiling(failures) * self._jitter())


def _named_culprit(status: int, message: str, part: list[Outgoing]) -> int | None:
    """Index of the statement the LRS's message names, if it names exactly one."""
    if status == 400:
        match = _PATH_INDEX.search(message)
        if match:
            index = int(match.group(1))
            if index < len(part):
                return index
        return None
    if status == 409:
        named = [i for i, item in enumerate(part) if item.statement_id and item.statement_id in message]
        if len(named) == 1:
            return named[0]
    return None
