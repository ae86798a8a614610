"""Subcommands of the projections: ``lrs frameworks``, ``lrs project``, ``lrs replay``, ``lrs roster``."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from lrs.cli_arguments import at_least_one, input_file
from projections.competency.catalog import (
    FRAMEWORKS_DIR,
    Catalog,
    document_identity,
    live_directories,
    read_documents,
)
from projections.competency.frameworks import (
    AlignmentTable,
    Document,
    Framework,
    FrameworkError,
    Program,
    parse_document,
    read_document,
)

__all__ = ["register", "validate_file"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    frameworks = subparsers.add_parser(
        "frameworks",
        help="validate and load competency frameworks, programmes and alignment tables",
        description="Competency frameworks, certification programmes and course alignment "
        "tables (format: schemas/frameworks/README.md).",
    )
    actions = frameworks.add_subparsers(dest="frameworks_command", metavar="ACTION")
    frameworks.set_defaults(handler=lambda args: _usage(frameworks))

    load = actions.add_parser(
        "load",
        help="validate a framework, programme or alignment document and make it live",
        description="Validate FILE on its own, then together with the live documents (the shipped "
        f"ones in {FRAMEWORKS_DIR} and those loaded before, in LRS_FRAMEWORKS_DIR, default "
        "<LRS_DATA_DIR>/frameworks): references must resolve, IRIs must be unique.  A valid FILE is "
        "copied into LRS_FRAMEWORKS_DIR, replacing a document of the same kind, IRI and version.  "
        "A problem is reported on one line, `lrs frameworks load: invalid: FILE: JSON-PATH: MESSAGE` "
        "(FILE: MESSAGE when the file is not JSON), and the exit status is 1; nothing "
        "is loaded then (a FILE that cannot be opened is a usage error, exit status 2).  The service and `lrs project` read the documents when they start; as the frameworks "
        "change, the competency projection asks for `lrs replay competency`.",
    )
    load.add_argument("file", metavar="FILE", type=input_file, help="a JSON document")
    load.add_argument("--check", action="store_true", help="only validate FILE; load nothing")
    load.add_argument(
        "--context",
        metavar="DIR",
        type=Path,
        action="append",
        help="validate against the documents in DIR instead of the live ones (repeatable); implies --check",
    )
    load.set_defaults(handler=_load)

    listing = actions.add_parser(
        "list",
        help="list the live documents",
        description="The shipped documents and those loaded with `lrs frameworks load`, one per line: "
        "what it is, then its file.",
    )
    listing.set_defaults(handler=_list)

    project = subparsers.add_parser(
        "project",
        help="run the competency projection from JetStream",
        description="Consume the LRS_EVENTS stream with a durable pull consumer and keep each "
        "learner's competency state in PostgreSQL (state and checkpoint in one transaction, "
        "acknowledged after commit).  One runner consumes; others wait for it.  Stops on SIGINT/SIGTERM.",
    )
    project.add_argument(
        "--batch-size", type=at_least_one, default=1000,
        help="messages per fetch, applied in one transaction (default: 1000)",
    )
    project.add_argument(
        "--max-batch-size", type=at_least_one, default=5000,
        help="when behind, each full fetch is followed by one twice as large, up to this "
        "(or --batch-size, if larger; default: 5000, the consumer's max_ack_pending)",
    )
    project.add_argument(
        "--batch-interval", type=float, default=0.1, metavar="SECONDS",
        help="pause after a batch that was not full, so that a runner keeping up commits fewer, larger "
        "transactions; adds at most this to the lag (default: 0.1; 0 applies every fetch at once)",
    )
    project.add_argument(
        "--max-attempts", type=at_least_one, default=5, help="failures of one event before it is parked, tried again 1 s after each (default: 5)"
    )
    project.add_argument("--frameworks", metavar="DIR", type=Path, action="append", help=_FRAMEWORKS_HELP)
    project.set_defaults(handler=_project)

    rebuild = subparsers.add_parser(
        "replay",
        help="rebuild a projection from the PostgreSQL event log",
        description="Rebuild PROJECTION from the event log in PostgreSQL into fresh tables, with a "
        "progress bar on a terminal, then swap them in (the live runner waits during the swap).  The "
        "whole log is folded in memory, each learner once, and the tables are written with COPY and "
        "indexed afterwards.  Every event read is checked against the hash chain as `lrs audit verify` "
        "checks it (hash recomputed, link to the event before, no gap, up to the log head): where the "
        "chain breaks, the exit status is 1, one line names the first altered or missing position, "
        "the live tables are left as they were and the fresh ones dropped.",
    )
    rebuild.add_argument("projection", choices=["competency"], help="the projection to rebuild")
    rebuild.add_argument(
        "--batch-size", type=at_least_one, default=10_000,
        help="events read from the log per round trip (default: 10000); the state is folded in memory "
        "and written once, so memory grows with the evidence in the log",
    )
    rebuild.add_argument("--frameworks", metavar="DIR", type=Path, action="append", help=_FRAMEWORKS_HELP)
    rebuild.add_argument(
        "--processes", type=at_least_one, default=None,
        help="processes that fold learners, each writing its share (default: the usable cores; 1: this "
        "process only)",
    )
    rebuild.add_argument(
        "--readers", type=at_least_one, default=None,
        help="of those, processes that read the log (all of them: each reads the whole log and keeps its share "
        "of the learners; 1: this process reads, the others fold after; in between: each reads the chunks of it "
        "it claims; default: all of them)",
    )
    rebuild.add_argument(
        "--compare", action="store_true",
        help="an auditor's check: rebuild into fresh tables and compare with the live projection at the same "
        "log position, without swapping anything in; prints both digests, exit status 0 when they are "
        "equal, 1 when they differ or the chain breaks.  The live runner goes on, waiting only while "
        "the two are digested (it must have reached the log position the rebuild read up to: "
        "waits up to 60 s for it)",
    )
    rebuild.set_defaults(handler=_replay)


    roster = subparsers.add_parser(
        "roster",
        help="load organisational units and learner memberships",
        description="Organisational units (ministry -> agency -> unit) and the roster of learner "
        "memberships with valid_from/valid_to; the denominator of unit certification rates.",
    )
    roster_actions = roster.add_subparsers(dest="roster_command", metavar="ACTION")
    roster.set_defaults(handler=lambda args: _usage(roster))
    roster_load = roster_actions.add_parser(
        "load",
        help="validate and load a roster file (JSON or CSV)",
        description="Load FILE into the tenant's roster in one transaction.  JSON: "
        '{"units": [{"id", "parent", "kind", "name"}], "memberships": [{"learner", "unit", '
        '"valid_from", "valid_to"}]}; CSV: header id,parent,kind,name (units) or '
        "learner,unit,valid_from,valid_to (memberships).  The load is recorded as roster events of the "
        "hash-chained log.  Units are added or updated by id; the memberships of every learner the file "
        "names replace that learner's timeline from their earliest valid_from on: an open membership is "
        "ended there, nothing is erased (GET /competency/admin/memberships?history=true).  A learner "
        "is an actor IFI key (mbox:mailto:..., mbox_sha1sum:..., openid:..., account:<homePage>|<name>).  "
        "Every problem is reported as WHERE: WHAT and the exit status is 1; nothing is loaded then "
        "(a FILE that cannot be opened is a usage error, exit status 2).",
    )
    roster_load.add_argument("file", metavar="FILE", type=input_file, help="a .json or .csv file")
    roster_load.add_argument("--tenant", default="default", help="the tenant (default: default)")
    roster_load.add_argument("--check", action="store_true", help="only validate the file on its own; load nothing")
    roster_load.set_defaults(handler=_roster_load)

    from projections.competency.report_command import register as register_report

    register_report(subparsers)


_FRAMEWORKS_HELP = "framework documents to use (repeatable; default: the live ones, see `lrs frameworks list`)"


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def validate_file(file: Path, context: list[Path] | None = None) -> tuple[Document, Catalog, bytes]:
    """``file`` checked alone and within the documents of ``context``
    (default: the shipped ones), with the bytes that were validated (read
    once); a document in the context with the same kind, IRI and version as
    ``file`` is replaced by it."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise FrameworkError(f"cannot read file: {exc.strerror}", None, str(file)) from None
    document = parse_document(data, source=str(file))
    named = [
        (name, other)
        for name, other in read_documents(context if context is not None else [FRAMEWORKS_DIR])
        if Path(name).resolve() != file.resolve() and document_identity(other) != document_identity(document)
    ]
    named.append((str(file), document))
    return document, Catalog.build(named), data


def install_document(data: bytes, document: Document, directory: Path) -> Path:
    """Write ``data`` (the validated bytes of ``document``) into ``directory``
    atomically and durably, over the document of the same kind, IRI and
    version if one is there, readable by other users as a copied file would
    be; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = None
    for path in sorted(directory.glob("*.json")):
        if document_identity(read_document(path)) == document_identity(document):
            target = path
            break
    if target is None:
        kind = {"AlignmentTable": "alignment"}.get(type(document).__name__, type(document).__name__.lower())
        slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{document.iri.split('://', 1)[-1]}-{document.version}").strip("-")
        target = directory / f"{kind}-{slug[:120]}.json"
        suffix = 1
        while target.exists():
            suffix += 1
            target = directory / f"{kind}-{slug[:120]}-{suffix}.json"
    umask = os.umask(0o022)
    os.umask(umask)
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".loading-", suffix=".tmp", delete=False) as out:
        out.write(data)
        out.flush()
        os.fchmod(out.fileno(), 0o644 & ~umask)  # a temporary file is private (0600)
        os.fsync(out.fileno())
    os.replace(out.name, target)
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)  # the rename itself
    finally:
        os.close(handle)
    return target


def describe(document: Document) -> str:
    if isinstance(document, Framework):
        competences = document.competences()
        return (
            f"framework {document.iri} version {document.version}: {len(document.areas)} areas, "
            f"{len(competences)} competences, {len(document.levels)} levels "
            f"({', '.join(level.code for level in document.levels)})"
        )
    if isinstance(document, Program):
        return (
            f"program {document.iri} version {document.version}: "
            f"{len(document.requirements)} required competences"
        )
    assert isinstance(document, AlignmentTable)
    return f"alignment for course {document.iri} version {document.version}: {len(document.alignments)} rules"


def _load(args: argparse.Namespace) -> int:
    from lrs.commands.common import load_settings

    installed = load_settings().installed_frameworks_dir
    context = args.context if args.context else live_directories(installed)
    try:
        document, _, data = validate_file(args.file, context)
    except FrameworkError as exc:
        broken_before = exc.source is not None and Path(exc.source).resolve().parent == installed.resolve()
        hint = f" (a document loaded before is broken: fix or remove {exc.source})" if broken_before else ""
        print(f"lrs frameworks load: invalid: {exc}{hint}", file=sys.stderr)
        return 1
    print(f"valid: {describe(document)}")
    if args.check or args.context:
        return 0
    try:
        path = install_document(data, document, installed)
    except OSError as exc:
        print(f"lrs frameworks load: cannot write to {installed}: {exc}", file=sys.stderr)
        return 1
    print(f"loaded: {path}")
    print(
        "a running `lrs serve` reads it within LRS_FRAMEWORKS_POLL_S and rebuilds the competency "
        "projection by itself; a separate `lrs project`: run `lrs replay competency`, then restart it"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from lrs.commands.common import load_settings

    try:
        documents = read_documents(live_directories(load_settings().installed_frameworks_dir))
    except FrameworkError as exc:
        print(f"lrs frameworks list: invalid frameworks: {exc}", file=sys.stderr)
        return 1
    for name, document in sorted(documents, key=lambda item: document_identity(item[1])):
        print(f"{describe(document)}\t{name}")
    return 0


def _catalog(args: argparse.Namespace) -> Catalog | None:
    from lrs.commands.common import load_settings
    from projections.competency.catalog import load_catalog, load_live_catalog

    try:
        if args.frameworks:
            return load_catalog(*args.frameworks)
        return load_live_catalog(load_settings().installed_frameworks_dir)
    except FrameworkError as exc:
        print(f"invalid frameworks: {exc}", file=sys.stderr)
        return None


def _project(args: argparse.Namespace) -> int:
    from lrs.commands.common import load_settings, run_async, setup

    if not 0 <= args.batch_interval <= 5:
        # (well under the consumer's ack wait, 30 s: fetched messages wait no longer than this)
        raise SystemExit("lrs project: --batch-interval must be between 0 and 5 seconds")
    catalog = _catalog(args)
    if catalog is None:
        return 1
    settings = load_settings()
    setup(settings)
    return run_async(lambda: _run_projection(settings, catalog, args))


async def _run_projection(settings: Any, catalog: Catalog, args: argparse.Namespace) -> int:
    from lrs.commands.common import reaching_database, settle_heap, stop_signals
    from lrs.runtime.embedded import embedded_services
    from lrs.store.migrations import apply_migrations
    from lrs.store.pool import create_pool
    from projections.competency.store import CompetencyProjection
    from projections.runner import ProjectionOutdated, ProjectionRunner

    async with embedded_services(settings) as (database_url, nats_url):
        with reaching_database(database_url):
            pool = await create_pool(database_url, min_size=2, max_size=3, application_name="lrs-project")
        try:
            await apply_migrations(pool, also=args.migrations)
            runner = ProjectionRunner(
                pool, CompetencyProjection(catalog, cache_size=settings.competency_state_cache_size),
                max_attempts=args.max_attempts,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in stop_signals():
                loop.add_signal_handler(sig, stop.set)
            # As the HTTP workers and the relay do: what exists now (modules,
            # the catalog, the pool) lives as long as the process, so the
            # collector stops walking it.  In a running `lrs project` the
            # messages it reads between batches (the collector is on then)
            # set off full collections of all of it, some 50 ms each
            # (docs/scaling.md, "branch lag3").
            settle_heap()
            try:
                await runner.run(nats_url, stop, batch_size=args.batch_size, batch_interval=args.batch_interval,
                                 max_batch_size=args.max_batch_size)
            except ProjectionOutdated as exc:
                print(f"lrs project: {exc}", file=sys.stderr)
                return 1
            finally:
                for sig in stop_signals():
                    loop.remove_signal_handler(sig)
        finally:
            await pool.close()
    return 0


def _replay(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lrs.commands.common import command_pool, database_url, load_settings, progress_bar, run_async, setup

    catalog = _catalog(args)
    if catalog is None:
        return 1
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        from lrs.store.pool import connect
        from projections.competency.store import CompetencyProjection, digest
        from projections.log_chain import ChainBroken
        from projections.replay import replay
        from projections.contract import ProjectionOutdated
        from projections.replay_compare import LiveBehind, compare
        from projections.swap_lock import LiveTablesBusy

        async with database_url(settings) as url:
            async with command_pool(
                replace(settings, database_url=url), application_name="lrs-replay", migrations=args.migrations
            ) as pool:
                projection = CompetencyProjection(catalog, replay_processes=args.processes, replay_readers=args.readers)
                options = {"batch_size": args.batch_size,
                           "connect": lambda: connect(url, application_name="lrs-replay")}
                try:
                    with progress_bar("event", f"replay {args.projection}") as progress:
                        if args.compare:
                            comparison = await compare(pool, projection, progress=progress, **options)
                        else:
                            position = await replay(pool, projection, progress=progress, **options)
                except ChainBroken as exc:
                    refused = f"{exc}; nothing was swapped in"
                except (LiveBehind, LiveTablesBusy, ProjectionOutdated) as exc:
                    refused = str(exc)
                else:
                    refused = None
                    if not args.compare:
                        replayed_digest = await digest(pool)
        # The result last, once the database (an embedded one logs its stop) is closed, as every command does.
        if refused is not None:
            print(f"lrs replay {args.projection}: {refused}", file=sys.stderr)
            return 1
        if args.compare:
            print(f"live {args.projection} {comparison.live} position {comparison.position}")
            print(f"rebuilt {args.projection} {comparison.rebuilt} position {comparison.position}")
            print("equal: the live projection is what the log gives" if comparison.equal else
                  "different: the live projection is not what the log gives")
            return 0 if comparison.equal else 1
        print(f"replayed {args.projection} through position {position}; digest {replayed_digest}")
        return 0

    return run_async(main)


def placement_report(result: Any) -> str:
    """Where the learners of a roster load went: joined (in no unit before),
    changed unit, left (in none now)."""
    return (f"{result.joined} {_learners(result.joined)} joined a unit, {result.moved} changed unit, "
            f"{result.left} left their unit")


def _learners(count: int) -> str:
    return "learner" if count == 1 else "learners"


def _roster_problems(exc: ValueError) -> str:
    """A RosterError's problems: one line for one; for more, a line saying
    how many, then one a line."""
    problems = getattr(exc, "problems", [str(exc)])
    if len(problems) == 1:
        return f"lrs roster load: invalid roster: {exc}"
    return f"lrs roster load: invalid roster, {len(problems)} problems:\n{exc}"


def _roster_load(args: argparse.Namespace) -> int:
    from projections.units.roster import RosterError, read_roster

    try:
        roster = read_roster(args.file)
    except RosterError as exc:
        print(_roster_problems(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"lrs roster load: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.check:
        print(f"valid: {len(roster.units)} units, {len(roster.memberships)} memberships (not loaded)")
        return 0
    from lrs.commands.common import command_pool, load_settings, progress_bar, run_async, setup

    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        from datetime import datetime, timezone

        from projections.units.store import load_roster

        async with command_pool(settings, application_name="lrs-roster", migrations=args.migrations) as pool:
            learner_keys = None
            if settings.seal_personal_data:  # learners recorded by pseudonym (docs/privacy.md)
                from lrs.privacy.master import PrivacyKeyError, load_or_create
                from lrs.store.learner_keys import LearnerKeys

                try:
                    learner_keys = LearnerKeys(pool, load_or_create(settings.privacy_master_key_file))
                except (PrivacyKeyError, OSError) as exc:
                    print(f"lrs roster load: {exc}", file=sys.stderr)
                    return 1
            try:
                with progress_bar("row", "roster") as progress:
                    result = await load_roster(
                        pool, args.tenant, roster, now=datetime.now(timezone.utc), progress=progress,
                        learner_keys=learner_keys,
                    )
            except RosterError as exc:
                print(_roster_problems(exc), file=sys.stderr)
                return 1
        print(
            f"loaded {result.units} units and {result.memberships} memberships of {result.learners} {_learners(result.learners)} "
            f"for tenant {args.tenant}; {placement_report(result)}"
        )
        return 0

    return run_async(main)
