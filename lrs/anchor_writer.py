"""Sign the log head every N events or T seconds and append the anchor to
the anchors file (lrs.anchors).  Runs beside the relay.  It holds no lock
and no connection between anchors: several writers (replicas, each with its
own file) only make more copies of the same kind of evidence, and a
database restart costs it nothing but one failed attempt.

Before signing, the writer checks the chain from the last position it
verified (at start: the last anchor of its file, whose hash must still be
the log's) up to the head it is about to sign: each new event once, so the
cost grows with the events written, not with the log.  A segment that does
not hold (a row altered, or rewritten with every later hash recomputed
since the writer last looked) is never signed: the writer logs
``anchor.refused`` with ``alert=true``, counts it in
``lrs_anchor_refusals_total``, sets ``lrs_anchor_refused`` to 1 and reports
it in ``/ready`` until the log holds again (it does not, short of a
restore: run ``lrs audit verify --anchors``).

Beside the relay the writer does not read the log a second time: the relay
hands it every batch of events it read (:meth:`AnchorWriter.observe`), the
writer hashes them as they come, and an anchor signs the last position
checked that way.  It reads from PostgreSQL only what nobody handed it (no
relay in the process, or a relay that stopped moving).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from lrs import anchors
from lrs.eventlog import GENESIS_HASH, EventRecord, verify_chain
from lrs.store.log_reader import hash_at, head, read_events_after
from lrs.tasks import cancel_and_wait

log = structlog.get_logger("lrs.anchors")

ANCHORED_POSITION = Gauge("lrs_anchor_position", "Log position of the last signed anchor written")
ANCHOR_FAILURES = Counter("lrs_anchor_failures", "Anchors that could not be signed or written")
ANCHOR_REFUSALS = Counter(
    "lrs_anchor_refusals", "Log heads not signed because the chain since the last verified position does not hold"
)
ANCHOR_REFUSED = Gauge("lrs_anchor_refused", "1 while the anchor writer refuses to sign the log head")

VERIFY_BATCH = 1000  # events read per query while checking the chain


class ChainBroken(RuntimeError):
    """The log does not hold from the last verified position to its head."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"the log does not hold at position {position}: {reason}")
        self.position = position


class AnchorWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        key_path: Path,
        anchors_path: Path,
        *,
        every_events: int = 10_000,
        every_s: float = 60.0,
        retry_interval: float = 5.0,
    ) -> None:
        self._pool = pool
        self.key_path = key_path
        self.anchors_path = anchors_path
        self.every_events = every_events
        self.every_s = every_s
        self._retry_interval = retry_interval
        self._key = anchors.load_or_create_key(key_path)
        last = _last_own_anchor(anchors_path, key_path)
        self.last_position = last.position if last is not None else 0
        # The chain is known to hold up to here (position, hash); None until
        # the starting point was checked against the log.
        self._start = (last.position, bytes.fromhex(last.hash)) if last is not None else (0, GENESIS_HASH)
        self.verified: tuple[int, bytes] | None = None
        self.refused: str | None = None  # why the last attempt was not signed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.every_events > 0 or self.every_s > 0

    def notify(self, position: int | None = None) -> None:
        """Writer commit hook: wake when ``every_events`` events wait to be anchored."""
        if position is not None and self.every_events and position - self.last_position >= self.every_events:
            self._wake.set()

    def observe(self, records: Sequence[EventRecord], stored_texts: Sequence[str] | None = None) -> None:
        """Relay hook: check ``records`` (consecutive events just read from
        the log) on from the last verified position.  Records already checked
        are skipped; a gap or a break leaves the verified position where it
        is, and the next anchor reads from PostgreSQL (and refuses).

        ``stored_texts`` are the records' stored times as
        :func:`lrs.eventlog.format_stored` writes them, formatted once by
        the relay from these rows for its frames (``Lrs-Stored``): the text
        is what this check would format itself, and every record is still
        hashed here from its fields as read from PostgreSQL."""
        if self.verified is None or self.refused is not None or not records:
            return
        verified, verified_hash = self.verified
        if records[-1].position <= verified:
            return
        skip = verified - records[0].position + 1 if records[0].position <= verified else 0
        fresh = records[skip:] if skip else records
        if fresh[0].position != verified + 1:
            return
        texts = stored_texts[skip:] if stored_texts is not None and skip else stored_texts
        if verify_chain(fresh, prev_position=verified, prev_hash=verified_hash, stored_texts=texts) is None:
            self.verified = (fresh[-1].position, fresh[-1].hash)

    def status(self) -> dict[str, object]:
        """For /ready: the last anchored and verified positions, and why the
        writer refuses to sign, if it does."""
        return {
            "anchored_position": self.last_position,
            "verified_position": self.verified[0] if self.verified is not None else None,
            "refused": self.refused,
        }

    async def anchor_now(self) -> anchors.Anchor | None:
        """Sign and append the current log head, unless it is already
        anchored or the chain up to it does not hold (then None, with
        ``refused`` saying why)."""
        position, hash_ = await head(self._pool)
        if position <= self.last_position and self.refused is None:
            return None
        try:
            await self._check_start()
            assert self.verified is not None
            if self.verified[0] <= self.last_position or self.refused is not None:
                # Nothing was handed over since the last anchor: read the log.
                await self._verify_up_to(position, hash_)
            elif self.verified[0] == position and self.verified[1] != hash_:
                raise ChainBroken(position, "the log head's hash is not the hash of the event at its position")
        except ChainBroken as exc:
            self.refused = str(exc)
            ANCHOR_REFUSALS.inc()
            ANCHOR_REFUSED.set(1)
            log.error("anchor.refused", head=position, broken_at=exc.position, error=str(exc), alert=True)
            return None
        if self.refused is not None:
            log.warning("anchor.resumed", head=position)
        self.refused = None
        ANCHOR_REFUSED.set(0)
        position, hash_ = self.verified  # the head, or the last position the relay handed over
        if position <= self.last_position:
            return None
        anchor = anchors.sign(self._key, position, hash_, datetime.now(timezone.utc))
        anchors.append_anchor(self.anchors_path, anchor)
        self.last_position = position
        ANCHORED_POSITION.set(position)
        log.info("anchor.written", position=position, key_id=anchor.key_id)
        return anchor

    async def _check_start(self) -> None:
        """The log must still have the last anchor's hash at its position."""
        if self.verified is not None:
            return
        start, start_hash = self._start
        if start:
            actual = await hash_at(self._pool, start)
            if actual is None or bytes(actual) != start_hash:
                raise ChainBroken(start, "its hash is not the one the last anchor signed")
        self.verified = (start, start_hash)

    async def _verify_up_to(self, position: int, hash_: bytes) -> None:
        """Check the chain from the last verified position to ``position``
        (the head, whose hash is ``hash_``); raises :class:`ChainBroken`."""
        assert self.verified is not None
        verified, verified_hash = self.verified
        if position < verified:
            raise ChainBroken(position, f"the log head is behind the verified position {verified}")
        while verified < position:
            records = await read_events_after(self._pool, verified, min(VERIFY_BATCH, position - verified))
            if not records:
                raise ChainBroken(verified + 1, "missing")
            broken = verify_chain(records, prev_position=verified, prev_hash=verified_hash)
            if broken is not None:
                raise ChainBroken(broken, "the event does not chain from the one before it")
            verified, verified_hash = records[-1].position, records[-1].hash
            self.verified = (verified, verified_hash)
        if verified_hash != hash_:
            raise ChainBroken(position, "the log head's hash is not the hash of the event at its position")

    async def start(self) -> None:
        try:
            await self._check_start()  # so that observe() has a place to go on from
        except ChainBroken as exc:
            self.refused = str(exc)
            ANCHOR_REFUSED.set(1)
            log.error("anchor.refused", broken_at=exc.position, error=str(exc), alert=True)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("anchor.start_check_failed", error=repr(exc))  # the first anchor_now checks again
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self.run(), name="anchors")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.every_s if self.every_s > 0 else None)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.anchor_now()
            except Exception as exc:  # noqa: BLE001 - an anchor writer must not die
                ANCHOR_FAILURES.inc()
                log.error("anchor.failed", error=repr(exc), alert=True)
                await asyncio.sleep(self._retry_interval)


def _last_own_anchor(anchors_path: Path, key_path: Path) -> anchors.Anchor | None:
    """The last anchor of ``anchors_path`` signed by one of this writer's
    keys (current or retired); None for a new or unreadable file."""
    try:
        written = anchors.read_anchors(anchors_path)
        keys = anchors.load_public_keys([anchors.public_keys_path(key_path)])
    except anchors.AnchorError:
        return None
    own = [a for a in written if anchors.signature_holds(a, keys)]
    return own[-1] if own else None
