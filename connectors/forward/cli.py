"""``lrs forward`` and ``lrs forward dead-letters list|replay``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit
from typing import Any

from connectors.forward.model import ForwardFilter, validate_name
from connectors.forward.opening import OpenerFactory
from lrs.url_redaction import redact_url

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_EPILOG = """\
environment:
  LRS_NATS_URL       default for --nats-url (else the embedded nats-server of a running
                     `lrs serve` under LRS_DATA_DIR)
  LRS_TARGET_URL     default for --to
  LRS_TARGET_KEY     default for --key
  LRS_TARGET_SECRET  default for --secret
  LRS_PRIVACY_KEY_FILE  the source's privacy key file, to open sealed statements before
                     sending them (default: LRS_DATA_DIR/privacy-key, as `lrs serve`)

Each forwarder (--name) is a durable JetStream consumer: stop it and start it
again and it continues where it stopped.  A statement is acknowledged only after
the target accepted it; when the target is down, forwarding waits and retries
for as long as it takes.  A statement the target refuses (400/409/413), or that
fails --max-deliveries times (500), is parked in the LRS_FORWARD_DLQ stream with
the target's last error; see `lrs forward dead-letters --help`.  Statements keep
their ids, so the target never stores one twice.

Statements are sent as GET /xapi/statements returns them: sealed learners
opened, an erased learner in the erased form (docs/privacy.md).

exit status: 0 stopped (SIGTERM/SIGINT) or caught up, 1 the target refused the
credentials or URL, or sealed statements arrived and no privacy key opens
them, 2 usage error."""


def register(subparsers: argparse._SubParsersAction, opener_factory: OpenerFactory) -> None:
    parser = subparsers.add_parser(
        "forward",
        help="forward statements matching a filter to another LRS, durably",
        description="Forward statements from the LRS_EVENTS JetStream stream to another xAPI LRS, "
        "optionally only those with given verbs, activities or tenants (each option repeatable; "
        "values of one option are alternatives, different options must all match; --activity "
        "matches the statement's object, like the xAPI activity filter).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_arguments(parser, False)
    parser.add_argument("--verb", action="append", default=[], metavar="IRI", help="forward only this verb")
    parser.add_argument("--activity", action="append", default=[], metavar="IRI",
                        help="forward only statements about this activity")
    parser.add_argument("--tenant", action="append", default=[], metavar="TENANT",
                        help="forward only this tenant's statements")
    _nats_arguments(parser)
    run = parser.add_argument_group("run")
    run.add_argument("--deliver", choices=("all", "new"), default="all",
                     help="for a new forwarder: every statement of the log (all, default: what the stream "
                     "no longer holds is read from the log) or statements stored from now on (new)")
    run.add_argument("--batch-size", type=int, default=100, help="statements per fetch and POST (default: 100)")
    run.add_argument("--max-deliveries", type=int, default=5,
                     help="deliveries of a statement the target fails on (HTTP 500) before it is parked (default: 5)")
    run.add_argument("--retry-delay", type=float, default=5.0,
                     help="seconds before such a statement is delivered again (default: 5)")
    run.add_argument("--until-caught-up", action="store_true",
                     help="exit once every statement so far, on the stream or read from the log, "
                          "is forwarded, skipped or parked")
    run.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    run.add_argument("--database-url", default=os.environ.get("LRS_DATABASE_URL"),
                     help="the source LRS's PostgreSQL, to check every message against the event log "
                     "before forwarding it and to read payloads relayed by reference (default: "
                     "$LRS_DATABASE_URL, else the embedded database of a running `lrs serve`)")
    parser.set_defaults(handler=run_forward, opener_factory=opener_factory)

    actions = parser.add_subparsers(dest="forward_action", metavar="ACTION")
    letters = actions.add_parser(
        "dead-letters",
        help="list or replay statements parked in the dead-letter stream",
        description="Statements `lrs forward` could not deliver are parked in the LRS_FORWARD_DLQ stream "
        "with the target's last error.  `list` shows them; `replay` sends them to the target again "
        "and deletes each one the target accepts.",
    )
    letter_actions = letters.add_subparsers(dest="letters_action", metavar="ACTION", required=True)
    listing = letter_actions.add_parser("list", help="list parked statements with their errors")
    _nats_arguments(listing, argparse.SUPPRESS)
    listing.add_argument("--all", action="store_true", help="of every forwarder, not only --name")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=run_list)
    again = letter_actions.add_parser("replay", help="send parked statements to the target again",
                                      epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _target_arguments(again, True)
    _nats_arguments(again, argparse.SUPPRESS)
    again.add_argument("--all", action="store_true", help="of every forwarder, not only --name")
    again.add_argument("--seq", action="append", type=int, metavar="N",
                       help="only the parked statement with this sequence number (repeatable; see list)")
    again.add_argument("--database-url", default=argparse.SUPPRESS,
                       help="the source LRS's PostgreSQL, whose keys open sealed statements before they are "
                       "sent (default: as for `lrs forward`)")
    again.set_defaults(handler=run_replay)

    remove = actions.add_parser(
        "remove",
        help="delete a forwarder no longer used: its durable consumer and its checkpoint",
        description="Delete the durable consumer of the forwarder --name from the LRS_EVENTS stream, "
        "and its checkpoint row (forward_checkpoints) from the source LRS's PostgreSQL.  The stream keeps "
        "messages until every consumer has them (interest retention), so a forwarder given up holds them "
        "for up to its maximum age unless it is removed.  Only forwarders' consumers are removed, never a "
        "projection's.  Statements it parked stay in LRS_FORWARD_DLQ (`lrs forward dead-letters list "
        "--name NAME`).  Deleting a consumer is the NATS admin user's (docs/trust.md): --nats-url must "
        "name it; without it, the admin user of the embedded nats-server of `lrs serve` under LRS_DATA_DIR "
        "is used.",
    )
    remove.add_argument("--name", required=True, help="the forwarder to remove (as given to `lrs forward --name`)")
    remove.add_argument("--nats-url", default=argparse.SUPPRESS,
                        help="NATS server, as a user allowed to delete consumers (default: $LRS_NATS_URL, else "
                        "the embedded server's admin)")
    remove.add_argument("--database-url", default=argparse.SUPPRESS,
                        help="the source LRS's PostgreSQL, which holds the checkpoint (default: as for "
                        "`lrs forward`)")
    remove.set_defaults(handler=run_remove)


def _target_arguments(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(name: str) -> Any:
        return argparse.SUPPRESS if suppress else os.environ.get(name)

    target = parser.add_argument_group("target LRS")
    target.add_argument("--to", metavar="URL", default=default("LRS_TARGET_URL"),
                        help="target LRS base URL (default: $LRS_TARGET_URL)")
    target.add_argument("--key", dest="target_key", metavar="KEY", default=default("LRS_TARGET_KEY"),
                        help="target credential key (default: $LRS_TARGET_KEY)")
    target.add_argument("--secret", dest="target_secret", metavar="SECRET", default=default("LRS_TARGET_SECRET"),
                        help="target credential secret (default: $LRS_TARGET_SECRET)")
    target.add_argument("--max-attempts", type=int, default=argparse.SUPPRESS if suppress else 3,
                        help="POST attempts per try while the target fails (default: 3)")


def _nats_arguments(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument("--name", default="forward" if default is None else default,
                        help="forwarder name: its durable consumer and dead-letter subject (default: forward)")
    parser.add_argument("--nats-url", default=os.environ.get("LRS_NATS_URL") if default is None else default,
                        help="NATS server (default: $LRS_NATS_URL)")


def _data_dir() -> Path:
    return Path(os.environ.get("LRS_DATA_DIR") or str(
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "lrs"))


def nats_url(args: argparse.Namespace, user: str = "forward") -> str | None:
    """--nats-url / LRS_NATS_URL, else the embedded nats-server of `lrs serve`
    under LRS_DATA_DIR: its port file (nats/port) and ``user``'s password
    (nats/auth.json, docs/trust.md)."""
    if getattr(args, "nats_url", None):
        return args.nats_url
    nats_dir = _data_dir() / "nats"
    try:
        port = int((nats_dir / "port").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        password = json.loads((nats_dir / "auth.json").read_text())[user]
    except (OSError, ValueError, KeyError, TypeError):
        return f"nats://127.0.0.1:{port}"
    return f"nats://{user}:{password}@127.0.0.1:{port}"


def database_url(args: argparse.Namespace) -> str | None:
    """--database-url / LRS_DATABASE_URL, else the embedded PostgreSQL of a
    running `lrs serve` (its postmaster.pid names the socket directory)."""
    if getattr(args, "database_url", None):
        return args.database_url
    try:
        lines = (_data_dir() / "postgres" / "pgdata" / "postmaster.pid").read_text().splitlines()
        port, socket_dir = int(lines[3]), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None
    return f"postgresql://postgres@/lrs?host={quote(socket_dir)}&port={port}"


def _check(args: argparse.Namespace, need_target: bool) -> str | None:
    try:
        validate_name(args.name)
    except ValueError as exc:
        return str(exc)
    if need_target:
        missing = [label for label, value in (("--to", args.to), ("--key", args.target_key),
                                              ("--secret", args.target_secret)) if not value]
        if missing:
            return f"missing {', '.join(missing)} (or LRS_TARGET_* environment variables)"
        target = urlsplit(args.to)
        if target.scheme not in ("http", "https") or not target.hostname:
            return f"--to {args.to!r} is not an http:// or https:// URL with a host"
    if nats_url(args) is None:
        return "no NATS server: give --nats-url or LRS_NATS_URL"
    return None


def _usage_error(problem: str) -> int:
    print(f"lrs forward: {problem}", file=sys.stderr)
    return EXIT_USAGE


def run_forward(args: argparse.Namespace) -> int:
    problem = _check(args, need_target=True)
    if problem is None and (args.batch_size < 1 or args.max_deliveries < 1):
        problem = "--batch-size and --max-deliveries must be at least 1"
    if problem is None and database_url(args) is None:
        problem = "no event log to check messages against: give --database-url or LRS_DATABASE_URL"
    if problem:
        return _usage_error(problem)
    return asyncio.run(_forward(args))


async def _forward(args: argparse.Namespace) -> int:
    import asyncpg

    from connectors.forward.forwarder import Forwarder
    from connectors.forward.logcheck import LogCheck
    from connectors.forward.opening import CannotOpen
    from connectors.forward.run import ForwardOptions, say
    from connectors.framework.sink import LrsSink, SinkFatal

    selection = ForwardFilter.of(args.verb, args.activity, args.tenant)
    options = ForwardOptions(name=args.name, deliver=args.deliver, batch_size=args.batch_size,
                             max_deliveries=args.max_deliveries, retry_delay=args.retry_delay,
                             until_caught_up=args.until_caught_up)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    progress = _Progress(args.name, enabled=not args.no_progress and sys.stderr.isatty())
    url = nats_url(args)
    shown = redact_url(url)
    say(f"{args.name}: {selection.describe()} from {shown} to {args.to}")
    db_url = database_url(args) or ""
    try:
        async with contextlib.AsyncExitStack() as stack:
            sink = await stack.enter_async_context(
                LrsSink(args.to, args.target_key, args.target_secret, max_attempts=args.max_attempts))
            try:
                log_check = await stack.enter_async_context(LogCheck(db_url))
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip()) \
                    or type(exc).__name__
                say(f"{args.name}: stopped: cannot use the database {redact_url(db_url)}: {reason}; check "
                    "that PostgreSQL runs and that LRS_DATABASE_URL names the source LRS's database")
                return EXIT_FAILED
            open_stored = args.opener_factory(log_check.pool, args.database_url or None)
            forwarder = Forwarder(url, sink, selection, options, log_check, open_stored=open_stored,
                                  on_progress=progress.update)
            try:
                stats = await forwarder.run(stop)
            except (SinkFatal, CannotOpen) as exc:
                say(f"stopped: {exc}")
                return EXIT_FAILED
            except asyncpg.UndefinedTableError as exc:
                say(f"{args.name}: stopped: the database {redact_url(db_url)} is not an LRS database of this "
                    f"version ({exc}); run `lrs migrate` with LRS_DATABASE_URL naming it")
                return EXIT_FAILED
    finally:
        progress.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if not forwarder.reached_nats:
        say(f"{args.name}: stopped before NATS at {shown} answered; nothing forwarded")
        return EXIT_OK
    say(f"{args.name}: {stats.render()}")
    return EXIT_OK


class _Progress:
    """A tqdm counter on a terminal; otherwise a status line every 30 s."""

    def __init__(self, name: str, enabled: bool) -> None:
        self._bar: Any = None
        self._last = time.monotonic()  # the first status line 30 s in: a short run prints only its summary
        self._name = name
        self._shown = -1
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(unit="stmt", desc=f"forward {name}", file=sys.stderr, dynamic_ncols=True)

    def update(self, stats: Any) -> None:
        if self._bar is not None:
            self._bar.update(stats.forwarded - self._bar.n)
            self._bar.set_postfix(skipped=stats.skipped, parked=stats.parked, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= 30 and stats.forwarded != self._shown:
            from connectors.forward.run import say

            say(f"{self._name}: {stats.render()}")
            self._last, self._shown = now, stats.forwarded

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_list(args: argparse.Namespace) -> int:
    problem = _check(args, need_target=False)
    if problem:
        return _usage_error(problem)
    return _unless_unreachable(_list(args))


def _unless_unreachable(job: Any) -> int:
    import nats.errors

    try:
        return asyncio.run(job)
    except (OSError, nats.errors.Error) as exc:
        print(f"lrs forward dead-letters: NATS unreachable: {exc!r}", file=sys.stderr)
        return EXIT_FAILED


async def _list(args: argparse.Namespace) -> int:
    from connectors.forward.deadletters import dead_letters
    from connectors.forward.connection import connect

    nc = await connect(nats_url(args), args.name, keep_trying=False)
    count = 0
    try:
        async for letter in dead_letters(nc.jetstream(), None if args.all else args.name):
            count += 1
            if args.json:
                print(json.dumps(letter.as_json(), sort_keys=True))
            else:
                print(f"{letter.sequence:>8}  {letter.parked_at}  {letter.forwarder}  tenant={letter.tenant}  "
                      f"position={letter.position}  id={letter.statement_id}  deliveries={letter.deliveries}  "
                      f"HTTP {letter.status or '-'}: {letter.error}")
    finally:
        await nc.close()
    if not args.json:
        print(f"{count} parked statement(s)", file=sys.stderr)
    return EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    for name, value in (("to", os.environ.get("LRS_TARGET_URL")), ("target_key", os.environ.get("LRS_TARGET_KEY")),
                        ("target_secret", os.environ.get("LRS_TARGET_SECRET")), ("max_attempts", 3)):
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    problem = _check(args, need_target=True)
    if problem is None and database_url(args) is None:
        problem = "no database to open sealed statements with: give --database-url or LRS_DATABASE_URL"
    if problem:
        return _usage_error(problem)
    return _unless_unreachable(_replay(args))


async def _replay(args: argparse.Namespace) -> int:
    from connectors.forward.deadletters import replay
    from connectors.forward.connection import connect
    from connectors.forward.logcheck import LogCheck
    from connectors.forward.opening import CannotOpen
    from connectors.framework.sink import LrsSink, SinkError

    nc = await connect(nats_url(args), args.name, keep_trying=False)
    try:
        async with LrsSink(args.to, args.target_key, args.target_secret, max_attempts=args.max_attempts) as sink, \
                LogCheck(database_url(args) or "") as source:
            open_stored = args.opener_factory(source.pool, getattr(args, "database_url", None) or None)
            try:
                result = await replay(nc.jetstream(), sink, None if args.all else args.name, args.seq,
                                      open_stored=open_stored)
            except (SinkError, CannotOpen) as exc:
                print(f"lrs forward dead-letters replay: stopped: {exc}", file=sys.stderr)
                return EXIT_FAILED
    finally:
        await nc.close()
    print(f"replayed {result.replayed}", file=sys.stderr)
    print(f"rejected {len(result.rejected)} (kept in the dead-letter stream)", file=sys.stderr)
    for letter, rejection in result.rejected:
        print(f"  seq {letter.sequence} id={letter.statement_id} HTTP {rejection.status}: {rejection.reason}",
              file=sys.stderr)
    return EXIT_OK if not result.rejected else EXIT_FAILED


def run_remove(args: argparse.Namespace) -> int:
    from lrs.nats.permissions import PROJECTION_CONSUMERS, projection_consumer

    problem = None
    try:
        validate_name(args.name)
    except ValueError as exc:
        problem = str(exc)
    if problem is None and (args.name in PROJECTION_CONSUMERS or args.name.startswith(projection_consumer(""))):
        problem = f"{args.name!r} is a projection's consumer, not a forwarder's: it is not removed"
    if problem is None and nats_url(args, "admin") is None:
        problem = "no NATS server: give --nats-url or LRS_NATS_URL (as the admin user)"
    if problem is None and database_url(args) is None:
        problem = "no database holding the checkpoint: give --database-url or LRS_DATABASE_URL"
    if problem:
        print(f"lrs forward remove: {problem}", file=sys.stderr)
        return EXIT_USAGE
    import nats.errors

    try:
        return asyncio.run(_remove(args))
    except (OSError, nats.errors.Error) as exc:
        hint = " (--nats-url must name a user allowed to delete consumers, such as admin)" \
            if isinstance(exc, nats.errors.TimeoutError) else ""
        print(f"lrs forward remove: NATS: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILED


async def _remove(args: argparse.Namespace) -> int:
    import asyncpg
    import nats.js.errors

    from connectors.forward.checkpoint import drop_checkpoint
    from connectors.forward.definitions import consumer_config
    from connectors.forward.connection import connect
    from lrs.nats.permissions import EVENTS_STREAM

    nc = await connect(nats_url(args, "admin") or "", args.name, keep_trying=False)
    try:
        js = nc.jetstream()
        try:
            info = await js.consumer_info(EVENTS_STREAM, args.name)
        except nats.js.errors.NotFoundError:
            info = None
        if info is not None and info.config.filter_subject != consumer_config(args.name).filter_subject:
            print(f"lrs forward remove: the consumer {args.name!r} of {EVENTS_STREAM} is not a forwarder's "
                  f"(it selects {info.config.filter_subject or 'every subject'}): it is not removed", file=sys.stderr)
            return EXIT_USAGE
        if info is not None:
            await js.delete_consumer(EVENTS_STREAM, args.name)
    finally:
        await nc.close()
    connection = await asyncpg.connect(database_url(args))
    try:
        checkpoint = await drop_checkpoint(connection, args.name)
    finally:
        await connection.close()
    if info is None and not checkpoint:
        print(f"lrs forward remove: no forwarder {args.name!r}: no consumer of that name on {EVENTS_STREAM} "
              "and no checkpoint", file=sys.stderr)
        return EXIT_FAILED
    removed = [f"consumer {args.name} of {EVENTS_STREAM} ({info.num_pending} statements pending)" if info else None,
               f"checkpoint {args.name}" if checkpoint else None]
    print(f"removed forwarder {args.name}: {' and '.join(r for r in removed if r)}")
    return EXIT_OK
