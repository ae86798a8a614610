"""The operators' page's audit status: the last signed anchor and the last
``lrs audit verify`` run, both read from files outside the database
(:mod:`lrs.anchors`, :mod:`lrs.verify_runs`), never from PostgreSQL's word."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from lrs import anchors, verify_runs
from lrs.config import Settings
from lrs.store.log_reader import hashes_at

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AnchorStatus:
    anchor: anchors.Anchor | None
    signature_holds: bool | None  # None: no anchor, or the public keys cannot be read
    matches_log: bool | None  # the log's hash at the anchor's position is the anchored one
    problem: str | None  # why the anchors or keys could not be read


@dataclass(frozen=True, slots=True)
class AuditStatus:
    anchor: AnchorStatus
    last_verify: verify_runs.VerifyRun | None
    verify_stale: bool
    stale_days: float


def _read_files(settings: Settings) -> tuple[anchors.Anchor | None, bool | None, str | None, verify_runs.VerifyRun | None]:
    try:
        run = verify_runs.last_run(settings.verify_runs_file)
    except OSError as exc:  # unreadable: shown as no run recorded, hence stale
        log.warning("console.verify_runs_unreadable", path=str(settings.verify_runs_file), error=repr(exc))
        run = None
    try:
        anchor = anchors.last_anchor(settings.anchor_log_file)
        if anchor is None:
            return None, None, None, run
        keys = anchors.load_public_keys([anchors.public_keys_path(settings.signing_key_file)])
    except (anchors.AnchorError, OSError) as exc:
        return None, None, str(exc), run
    return anchor, anchors.signature_holds(anchor, keys), None, run


async def audit_status(pool: asyncpg.Pool, settings: Settings, now: datetime) -> AuditStatus:
    anchor, holds, problem, run = await asyncio.to_thread(_read_files, settings)
    matches = None
    if anchor is not None:
        found = (await hashes_at(pool, [anchor.position])).get(anchor.position)
        matches = found is not None and found.hex() == anchor.hash
    stale_after = timedelta(days=settings.audit_verify_stale_days)
    return AuditStatus(
        anchor=AnchorStatus(anchor, holds, matches, problem),
        last_verify=run,
        verify_stale=verify_runs.is_stale(run, now, stale_after),
        stale_days=settings.audit_verify_stale_days,
    )
