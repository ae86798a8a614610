"""``lrs audit``: check the event log's hash chain (and its signed anchors);
print a projection's digest; publish and rotate the anchor key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

from lrs import verify_runs
from lrs.cli_arguments import at_least_one, cannot_read, input_file
from lrs.commands.common import (
    cli_runner, command_pool, load_settings, progress_bar, run_async, setup,
)

if TYPE_CHECKING:
    import asyncpg

# A projection's digest and the log position it reflects, read in one snapshot.
Digest = Callable[["asyncpg.Pool"], Awaitable[tuple[str, int]]]

# `--anchors` given without FILE: the LRS's own anchors file (LRS_ANCHORS_FILE).
_ANCHORS_FILE_SETTING = Path("<LRS_ANCHORS_FILE>")


def register(subparsers: argparse._SubParsersAction, *, digests: Mapping[str, Digest]) -> None:  # type: ignore[type-arg]
    """``digests``: the projections `lrs audit digest` can name, given by the
    composition root (lrs/service.py)."""
    audit = subparsers.add_parser(
        "audit",
        help="verify the event log's hash chain, or print a projection's digest",
        description="Audit the record: `verify` walks the event log's hash chain, `digest` prints a "
        "canonical SHA-256 of a projection's state (equal to the digest `lrs replay` prints after "
        "rebuilding it from the log; `lrs replay PROJECTION --compare` rebuilds and compares the two "
        "without replacing the live projection).",
    )
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.set_defaults(handler=lambda args: _usage(audit))

    verify = actions.add_parser(
        "verify",
        help="walk the hash chain and report the first altered or missing position",
        description="Read the event log in position order from PostgreSQL (streaming, with a progress "
        "bar on a terminal) and check that positions are consecutive, each event names the previous "
        "event's hash, and each hash matches the event's content.  Exit status 0: the chain holds "
        "through the log head; 1: it breaks, and the first altered or missing position is printed.  "
        "Each run is recorded in LRS_VERIFY_RUNS_FILE (see --no-record).",
    )
    verify.add_argument("--batch-size", type=at_least_one, default=5000, help="events read per query (default: 5000)")
    verify.add_argument(
        "--anchors", metavar="FILE", type=input_file, nargs="?", const=_ANCHORS_FILE_SETTING,
        help="also check the log against the signed anchors in FILE (JSON lines, as the LRS writes to "
        "LRS_ANCHORS_FILE; without FILE: that file, default <LRS_DATA_DIR>/anchors.jsonl): exit status 1 "
        "names the first position after the last anchor the log still matches",
    )
    verify.add_argument(
        "--public-key", metavar="PEM", type=input_file, action="append",
        help="public keys the anchors are signed with (PEM, one or more per file; repeatable; default: "
        "the public keys file beside LRS_ANCHOR_KEY_FILE)",
    )
    verify.add_argument(
        "--no-record", dest="record", action="store_false",
        help="do not append the run to LRS_VERIFY_RUNS_FILE (default: <LRS_DATA_DIR>/verify-runs.jsonl, "
        "which the console's operators' page reads for its audit status)",
    )
    verify.set_defaults(handler=_verify)

    public_key = actions.add_parser(
        "public-key",
        help="print the public keys that verify the anchors (PEM, oldest first)",
        description="Print every public key the LRS has signed anchors with, oldest first, current last "
        "(PEM).  Give the file to auditors: with it, `lrs audit verify --anchors FILE --public-key KEYS` "
        "checks a backup offline.  Exit status 1 when there is no signing key at LRS_ANCHOR_KEY_FILE (the relay "
        "makes it when it first starts, `lrs audit anchor` at once): this command never makes one.",
    )
    public_key.set_defaults(handler=_public_key)

    rotate = actions.add_parser(
        "rotate-key",
        help="replace the anchor signing key; old anchors stay verifiable",
        description="Make a new Ed25519 signing key at LRS_ANCHOR_KEY_FILE.  The old private key is kept "
        "beside it with the suffix .<key id>.retired (delete it when you no longer need it), and its "
        "public key stays in the public keys file, so anchors signed with it still verify.  Restart the "
        "relay (or `lrs serve`) to sign with the new key.  Exit status 1 when there is no key to replace.",
    )
    rotate.set_defaults(handler=_rotate_key)

    anchor = actions.add_parser(
        "anchor",
        help="sign the current log head now and append the anchor",
        description="Sign the log head (position and hash) with the anchor key and append it to "
        "LRS_ANCHORS_FILE, as the relay does every LRS_ANCHOR_EVERY_EVENTS events or "
        "LRS_ANCHOR_EVERY_S seconds.",
    )
    anchor.set_defaults(handler=_anchor)

    digest = actions.add_parser(
        "digest",
        help="print the canonical SHA-256 of a projection's state",
        description="Print the SHA-256 over the projection's canonical state (every learner's stored state, "
        "the competency, certification and mastery-mismatch rows, the unit counts, the roster and the series, "
        "each in its keys' order with text in byte order), with the log position it reflects.",
    )
    digest.add_argument("projection", choices=tuple(digests), help="the projection")
    digest.set_defaults(handler=_digest, digests=digests)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


async def verify_log(
    pool: object, batch_size: int, progress: object = None, hashes: dict[int, bytes] | None = None
) -> tuple[int | None, int]:
    """(first bad position or None, last position checked intact): the log
    read in batches of ``batch_size`` and walked up to the log head
    (lrs.chain_walk, as a replay walks its pages).  ``hashes``: the
    positions wanted as keys; their hashes in the log are filled in."""
    from lrs.chain_walk import ChainBroken, ChainWalk
    from lrs.store.log_reader import head as log_head, read_events_after

    head, head_hash = await log_head(pool)
    walk = ChainWalk(head, head_hash)
    try:
        while batch := await read_events_after(pool, walk.position, batch_size):
            walk.records(batch)
            if hashes:
                for record in batch:
                    if record.position in hashes:
                        hashes[record.position] = bytes(record.hash)
            if progress is not None:
                progress(walk.position, max(head, walk.position))  # type: ignore[operator]
        walk.end()
    except ChainBroken as exc:
        return exc.position, exc.position - 1
    return None, walk.position


def _verify(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup(settings, one_shot=True)
    anchor_list, keys = None, None
    if args.anchors is not None:
        from lrs import anchors

        # The LRS's own files, read when their option names none: one that
        # cannot be read is refused as a FILE named on the command line is
        # (input_file: same words, exit status 2), and since an auditor away
        # from the LRS's machine has no default file, the line says which
        # option names their copy.
        anchors_file, key_files = args.anchors, args.public_key
        if anchors_file is _ANCHORS_FILE_SETTING:
            anchors_file = settings.anchor_log_file
            _usage_error_if_unreadable(
                "--anchors", anchors_file, "name a copy of the LRS's anchors file with --anchors FILE")
        if not key_files:
            key_files = [anchors.public_keys_path(settings.signing_key_file)]
            _usage_error_if_unreadable(
                "--public-key", key_files[0],
                "name the published public keys with --public-key PEM (`lrs audit public-key` prints them)")
        try:
            anchor_list = anchors.read_anchors(anchors_file)
            keys = anchors.load_public_keys(key_files)
        except anchors.AnchorError as exc:
            raise SystemExit(f"lrs audit verify: {exc}") from None

    async def main() -> int:
        from lrs.eventlog import broken_chain_line
        from lrs.store.log_reader import last_position

        # Read only: an auditor's check changes nothing, not even the schema.
        wanted: dict[int, bytes] = {a.position: b"" for a in anchor_list or ()}
        started = verify_runs.now_iso()
        async with command_pool(settings, application_name="lrs-audit", max_size=1, migrate=False) as pool:
            head = await last_position(pool)
            with progress_bar("event", "verify") as progress:
                bad, checked = await verify_log(pool, args.batch_size, progress, wanted)
        anchor_check = None
        if bad is not None:
            print(broken_chain_line(bad))
            code = 1
        else:
            print(f"hash chain intact through position {checked}")
            code = 0
            if anchor_list is not None:
                code, anchor_check = _report_anchors(
                    anchor_list, keys or {}, {p: h for p, h in wanted.items() if h}, checked
                )
        run = verify_runs.VerifyRun(
            started_at=started, finished_at=verify_runs.now_iso(), checked_from=1,
            checked_through=checked if bad is None else bad - 1, head=head,
            result="intact" if bad is None else "broken", first_bad=bad, anchors=anchor_check,
            by=cli_runner(),
        )
        if args.record:
            try:
                verify_runs.append_run(settings.verify_runs_file, run)
            except OSError as exc:  # the check itself stands; say that it was not recorded
                print(f"lrs audit verify: could not record the run in {settings.verify_runs_file}: {exc.strerror}",
                      file=sys.stderr)
        return code

    return run_async(main)


def _usage_error_if_unreadable(option: str, path: Path, hint: str) -> None:
    problem = cannot_read(path)
    if problem is not None:
        print(f"lrs audit verify: argument {option}: {problem}; {hint} (see `lrs audit verify --help`)", file=sys.stderr)
        raise SystemExit(2)


def _report_anchors(
    anchor_list: list, keys: dict, log_hashes: dict[int, bytes], log_end: int
) -> tuple[int, "verify_runs.AnchorCheck"]:
    from lrs import anchors

    lines: list[str] = []

    def say(line: str) -> None:
        print(line)
        lines.append(line)

    def outcome(code: int, checked: int) -> tuple[int, verify_runs.AnchorCheck]:
        return code, verify_runs.AnchorCheck(ok=code == 0, checked=checked, message=" ".join(lines))

    try:
        report = anchors.compare(anchor_list, keys, log_hashes)
    except anchors.AnchorError as exc:
        say(f"anchors: {exc}")
        return outcome(1, 0)
    for position in report.bad_signatures:
        say(f"anchor at position {position}: its signature does not hold (the anchors file was altered)")
    mismatch = report.first_mismatch
    if mismatch is not None:
        say(
            f"log rewritten: the anchor at position {mismatch.position} (signed {mismatch.signed_at}, key "
            f"{mismatch.key_id}) does not match the log; the last anchor it still matches is at position "
            f"{report.last_matching}: first position that may have been rewritten: {report.last_matching + 1}"
        )
    if not report.ok:
        return outcome(1, report.checked)
    if report.checked == 0:
        # An empty (or emptied) anchors file proves nothing: passing it would
        # tell an auditor the log is anchored when no anchor was checked.
        say("no signed anchor to check: the anchors prove nothing about the log")
        return outcome(1, 0)
    last = anchor_list[-1].position
    say(f"matches all {report.checked} signed anchors (the last at position {last})")
    if log_end > last:
        say(f"positions {last + 1} to {log_end} come after the last anchor: no anchor covers them")
    return outcome(0, report.checked)


def _public_key(args: argparse.Namespace) -> int:
    from lrs import anchors

    settings = load_settings()
    try:
        anchors.load_key(settings.signing_key_file)  # a key made here would verify nothing ever signed
        sys.stdout.write(anchors.public_keys_path(settings.signing_key_file).read_text())
    except (anchors.AnchorError, OSError) as exc:
        raise SystemExit(f"lrs audit public-key: {exc}") from None
    return 0


def _rotate_key(args: argparse.Namespace) -> int:
    from lrs import anchors

    settings = load_settings()
    try:
        old, new = anchors.rotate_key(settings.signing_key_file)
    except (anchors.AnchorError, OSError) as exc:
        raise SystemExit(f"lrs audit rotate-key: {exc}") from None
    print(f"anchor key {old} retired; anchors are now signed with key {new} (restart the relay to use it)")
    return 0


def _anchor(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        from lrs.anchor_writer import AnchorWriter

        async with command_pool(settings, application_name="lrs-audit", max_size=1, migrate=False) as pool:
            writer = AnchorWriter(pool, settings.signing_key_file, settings.anchor_log_file)
            anchor = await writer.anchor_now()
        if writer.refused is not None:
            print(f"lrs audit anchor: not signed: {writer.refused}; run lrs audit verify --anchors", file=sys.stderr)
            return 1
        if anchor is None:
            print(f"the log head (position {writer.last_position}) is already anchored")
        else:
            print(f"anchored position {anchor.position} hash {anchor.hash} with key {anchor.key_id}")
        return 0

    return run_async(main)


def _digest(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        async with command_pool(settings, application_name="lrs-audit", max_size=1, migrations=args.migrations) as pool:
            value, position = await args.digests[args.projection](pool)
        print(f"{args.projection} {value} position {position}")
        return 0

    return run_async(main)
