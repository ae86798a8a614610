"""``lrs audit``: check the event log's hash chain; print a projection's digest."""

from __future__ import annotations

import argparse

from lrs.commands.common import command_pool, load_settings, progress_bar, run_async, setup

PROJECTIONS = ("competency",)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = subparsers.add_parser(
        "audit",
        help="verify the event log's hash chain, or print a projection's digest",
        description="Audit the record: `verify` walks the event log's hash chain, `digest` prints a "
        "canonical SHA-256 of a projection's state (equal to the digest `lrs replay` prints after "
        "rebuilding it from the log).",
    )
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.set_defaults(handler=lambda args: _usage(audit))

    verify = actions.add_parser(
        "verify",
        help="walk the hash chain and report the first altered or missing position",
        description="Read the event log in position order from PostgreSQL (streaming, with a progress "
        "bar on a terminal) and check that positions are consecutive, each event names the previous "
        "event's hash, and each hash matches the event's content.  Exit status 0: the chain holds "
        "through the log head; 1: it breaks, and the first altered or missing position is printed.",
    )
    verify.add_argument("--batch-size", type=int, default=5000, help="events read per query (default: 5000)")
    verify.set_defaults(handler=_verify)

    digest = actions.add_parser(
        "digest",
        help="print the canonical SHA-256 of a projection's state",
        description="Print the SHA-256 over the projection's canonical state (every learner's state in "
        "(tenant, learner) order, then every unit count), with the log position it reflects.",
    )
    digest.add_argument("projection", choices=PROJECTIONS, help="the projection")
    digest.set_defaults(handler=_digest)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


async def verify_log(pool: object, batch_size: int, progress: object = None) -> tuple[int | None, int]:
    """(first bad position or None, last position checked)."""
    from lrs.eventlog import GENESIS_HASH, verify_chain
    from lrs.store.log_reader import last_position, read_events_after

    head = await last_position(pool)
    position, prev_hash = 0, GENESIS_HASH
    while True:
        batch = await read_events_after(pool, position, batch_size)
        if not batch:
            break
        bad = verify_chain(batch, prev_position=position, prev_hash=prev_hash)
        if bad is not None:
            return bad, position
        position, prev_hash = batch[-1].position, batch[-1].hash
        if progress is not None:
            progress(position, max(head, position))  # type: ignore[operator]
    if position < head:  # the log head names events that are not there
        return position + 1, position
    return None, position


def _verify(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise SystemExit("lrs audit verify: --batch-size must be at least 1")
    settings = load_settings()
    setup(settings)

    async def main() -> int:
        # Read only: an auditor's check changes nothing, not even the schema.
        async with command_pool(settings, application_name="lrs-audit", max_size=1, migrate=False) as pool:
            with progress_bar("event", "verify") as progress:
                bad, checked = await verify_log(pool, args.batch_size, progress)
        if bad is not None:
            print(f"hash chain broken: first altered or missing position {bad} "
                  f"(intact through position {bad - 1})")
            return 1
        print(f"hash chain intact through position {checked}")
        return 0

    return run_async(main)


def _digest(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup(settings)

    async def main() -> int:
        from projections.competency.store import digest_with_position

        async with command_pool(settings, application_name="lrs-audit", max_size=1) as pool:
            value, position = await digest_with_position(pool)
        print(f"{args.projection} {value} position {position}")
        return 0

    return run_async(main)
