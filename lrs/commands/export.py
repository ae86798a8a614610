"""``lrs export``: stream statements out of the event log as ndjson, in stored order.

What is exported: every ``statement`` event of the log, as stored (the
canonical JSON with ``id``, ``stored``, ``authority``, ``version`` and
``timestamp``) with its sealed personal data opened as a GET opens it (an
erased learner in the erased form, docs/privacy.md), one per line, in position order, which is the order the LRS
stored them (``stored`` rises strictly with the position).  Voided statements
*and* the statements voiding them are exported: the log is immutable and an
export meant for re-import must carry both, in order, so the importing LRS
voids the same statements.  ``lrs import`` of the file into another LRS gives
the same statements with the same ids; that LRS sets its own ``stored`` and
``authority``, as xAPI requires.

The export is a snapshot: it covers the events committed when it starts
(positions up to the log head at that moment); statements stored meanwhile are
not included.  ``--since`` is exclusive and ``--until`` inclusive, like the
xAPI ``since``/``until`` parameters, and both compare ``stored``.  Because
positions are gapless and ``stored`` is monotone, the range is found by binary
search over positions, and the rows are read in pages by position (keyset
pagination: no long transaction, memory bounded by one page); a page's
sealed statements are opened together, one call per tenant.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from datetime import datetime, timezone
from typing import IO, Any, Sequence

from lrs.commands.common import database_url, load_settings, reaching_database, run_async, setup

STATEMENT_EVENT = "statement"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write stored statements as ndjson (one statement per line), in stored order",
        description=(
            "Write the statements of the event log (LRS_DATABASE_URL, or the embedded database) as "
            "newline-delimited JSON, in the order they were stored, as stored with sealed personal data "
            "opened as GET opens it (an erased learner in the erased form: docs/privacy.md). Voided "
            "statements and voiding statements are both included, so `lrs import` of the file into "
            "another LRS reproduces the same statements (same ids, same voiding). The export covers "
            "what was committed when it started. Output goes to stdout unless --output is given; "
            "a name ending in .gz is gzip-compressed."
        ),
    )
    parser.add_argument("--since", type=_timestamp, metavar="TIME",
                        help="only statements stored after this ISO 8601 time (exclusive; UTC if no offset)")
    parser.add_argument("--until", type=_timestamp, metavar="TIME",
                        help="only statements stored at or before this ISO 8601 time (inclusive)")
    parser.add_argument("--tenant", action="append", metavar="TENANT",
                        help="only this tenant's statements (repeatable; default: every tenant)")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write to FILE (written under a temporary name, renamed when complete; "
                        "gzip when it ends in .gz) instead of stdout")
    parser.add_argument("--page-size", type=int, default=1000, help="events read per query (default: 1000)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.set_defaults(handler=_run)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


async def _learner_keys(pool: Any, settings: Any) -> Any:
    """The keys that open sealed identities (exported opened, erased ones in
    the erased form; docs/privacy.md), or None for a store holding none.
    Raises PrivacyKeyError when the store holds sealed identities and the
    key file is not there or not theirs: never a new key, which would open
    nothing and export everyone as erased."""
    from lrs.config import ConfigError
    from lrs.store.learner_key_sql import SELECT_ANY_LEARNER_KEY
    from lrs.store.statement_opener import keys_for_reading

    if not await pool.fetchval(SELECT_ANY_LEARNER_KEY):
        return None
    try:
        path = settings.privacy_master_key_file if settings is not None else None
    except ConfigError:
        path = None
    return await keys_for_reading(pool, path)


def _run(args: argparse.Namespace) -> int:
    if args.page_size < 1:
        print("lrs export: --page-size must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        async with database_url(settings) as url:
            return await export(url, args, settings)

    from lrs.privacy.master import PrivacyKeyError

    try:
        return run_async(main)
    except PrivacyKeyError as exc:
        print(f"lrs export: {exc}", file=sys.stderr)
        return 2


async def export(url: str, args: argparse.Namespace, settings: Any = None) -> int:
    from lrs.store.pool import create_pool

    with reaching_database(url):
        pool = await create_pool(url, min_size=1, max_size=1, application_name="lrs-export")
    try:
        first, last = await position_range(pool, args.since, args.until)
        learner_keys = await _learner_keys(pool, settings)
        with _Output(args.output) as output:
            count = await _copy(pool, output.stream, first, last, args, learner_keys)
            output.complete = True
    finally:
        await pool.close()
    where = args.output or "stdout"
    print(f"exported {count} statement(s), positions {first}..{last}, to {where}", file=sys.stderr)
    return 0


async def position_range(pool: Any, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    """The positions ``first..last`` (inclusive) stored in ``(since, until]``,
    within the log as it is now; ``first > last`` when there are none."""
    from lrs.store.log_reader import last_position

    head = await last_position(pool)
    first, last = 1, head
    if since is not None:
        first = await _first_position_where(pool, 1, head, lambda stored: stored > since)
    if until is not None:
        last = await _first_position_where(pool, first, head, lambda stored: stored > until) - 1
    return first, last


async def _first_position_where(pool: Any, low: int, high: int, predicate: Any) -> int:
    """The smallest position in ``low..high`` whose ``stored`` satisfies the
    monotone ``predicate`` (``high + 1`` if none): positions are gapless, so
    the event at ``p`` is the first one after ``p - 1``."""
    from lrs.store.log_reader import read_events_after

    answer = high + 1
    while low <= high:
        middle = (low + high) // 2
        (event,) = await read_events_after(pool, middle - 1, 1)
        if predicate(event.stored):
            answer, high = middle, middle - 1
        else:
            low = middle + 1
    return answer


async def _copy(
    pool: Any, stream: IO[bytes], first: int, last: int, args: argparse.Namespace, learner_keys: Any = None
) -> int:
    from lrs.store.log_reader import read_events_after

    tenants = set(args.tenant) if args.tenant else None
    progress = _progress_bar(max(0, last - first + 1), args)
    count = 0
    position = first - 1
    try:
        while position < last:
            events = await read_events_after(pool, position, min(args.page_size, last - position))
            if not events:
                break
            chosen = [
                event
                for event in events
                if event.event_type == STATEMENT_EVENT and (tenants is None or event.tenant in tenants)
            ]
            lines = await _opened(learner_keys, chosen) if learner_keys is not None else [e.payload for e in chosen]
            if lines:
                stream.write(b"\n".join(lines) + b"\n")
                count += len(lines)
            if progress is not None:
                progress.update(events[-1].position - position)
            position = events[-1].position
    finally:
        if progress is not None:
            progress.close()
    stream.flush()
    return count


async def _opened(learner_keys: Any, events: Sequence[Any]) -> list[bytes]:
    """The page's payloads opened, in its order, with one call of the opener
    per tenant (each reads the keys and stored ciphertexts it needs from
    PostgreSQL: one call a statement made a round trip or two of each)."""
    lines = [event.payload for event in events]
    by_tenant: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        by_tenant.setdefault(event.tenant, []).append(index)
    for tenant, indexes in by_tenant.items():
        for index, line in zip(indexes, await learner_keys.open_payloads(tenant, [lines[i] for i in indexes])):
            lines[index] = line
    return lines


def _progress_bar(total: int, args: argparse.Namespace) -> Any:
    if args.no_progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="event", desc="export", file=sys.stderr, dynamic_ncols=True)


class _Output:
    """stdout, or a file written under a temporary name and renamed into place
    once complete (an interrupted export leaves no truncated file behind)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.complete = False
        self._tmp: str | None = None
        self._raw: IO[bytes] | None = None
        self.stream: IO[bytes] = sys.stdout.buffer

    def __enter__(self) -> "_Output":
        if self.path is not None:
            self._tmp = f"{self.path}.partial"
            self._raw = open(self._tmp, "wb")
            if self.path.endswith(".gz"):
                # mtime=0 and no name: the same export gives the same bytes.
                self.stream = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)  # type: ignore[assignment]
            else:
                self.stream = self._raw
        return self

    def __exit__(self, *exc_info: Sequence[object]) -> None:
        if self._raw is None:
            return
        try:
            if self.stream is not self._raw:
                self.stream.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        finally:
            self._raw.close()
        assert self._tmp is not None and self.path is not None
        if self.complete:
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)
