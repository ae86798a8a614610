"""``lrs import``, ``lrs pull`` and ``lrs forward``: connectors on the command line.

Both write to the target LRS through its xAPI API.  Target defaults come from
the environment: LRS_TARGET_URL, LRS_TARGET_KEY, LRS_TARGET_SECRET.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from connectors.framework.checkpoint import CheckpointError, CheckpointFile
from connectors.framework.model import Cursor, Mapping, Source, Summary
from connectors.framework.runner import RunOptions, run_connector
from connectors.framework.sink import LrsSink, statements_endpoint
from lrs.cli_arguments import at_least_one, input_file

EXIT_OK = 0
EXIT_STOPPED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3

_ENV_HELP = """\
environment:
  LRS_TARGET_URL     default for --to (the LRS base URL, e.g. http://localhost:8080)
  LRS_TARGET_KEY     default for the target credential key
  LRS_TARGET_SECRET  default for the target credential secret

exit status: 0 all done, 1 stopped early (LRS down, bad credentials; re-run to
resume), 2 usage error, 3 done but some statements were rejected.

Progress is saved in a checkpoint file only after the LRS has accepted
everything before it; re-running the same command resumes there.  Statement
ids are deterministic, so re-running never stores anything twice."""


def register(subparsers: argparse._SubParsersAction, *, forward_opener: Any) -> None:
    """``forward_opener``: how `lrs forward` opens sealed statements
    (connectors.forward.opening.OpenerFactory), given by the composition root."""
    imp = subparsers.add_parser(
        "import",
        help="import statements or Open edX tracking logs from files into an LRS",
        description="Import files into an LRS through its xAPI API.\n\n"
        "  --from ndjson   one statement or an array of statements per line (.gz accepted);\n"
        "                  statements without an id get a deterministic UUIDv5 (see\n"
        "                  connectors/ndjson/mapping.py).\n"
        "  --from openedx  Open edX tracking logs (JSON lines, .gz accepted) mapped to xAPI\n"
        "                  the way Open edX's event-routing-backends maps them.",
        epilog=_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("files", nargs="+", metavar="FILE", type=input_file, help="input files (plain or gzip)")
    imp.add_argument("--from", dest="source", choices=("ndjson", "openedx"), default="ndjson",
                     help="input format (default: ndjson)")
    _target_arguments(imp, key_flags=("--key",), secret_flags=("--secret",))
    oe = imp.add_argument_group("Open edX")
    oe.add_argument("--platform-url", help="the LMS URL, used as the actor account homePage and in "
                    "activity ids (required with --from openedx)")
    oe.add_argument("--actor-id", choices=("user_id", "username"), default="user_id",
                    help="which user field names the actor account (default: user_id; the email is never used)")
    oe.add_argument("--actor-map", metavar="CSV", type=input_file,
                    help="CSV file with columns user_id,external_id (e.g. the LMS's anonymous user ids): "
                    "actors are named by external_id; users not listed are skipped")
    _run_arguments(imp)
    imp.set_defaults(handler=run_import)

    pull = subparsers.add_parser(
        "pull",
        help="copy statements from another xAPI LRS into this one",
        description="Copy statements from any conformant xAPI LRS (GET /statements, oldest\n"
        "first, following 'more' links) to the target LRS, keeping their ids.  Statements\n"
        "whose attachment data is not reachable by fileUrl are rejected by the target and\n"
        "reported.",
        epilog=_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pull.add_argument("url", metavar="URL", help="the source LRS (base URL or its .../xapi endpoint)")
    pull.add_argument("--key", required=True, help="source LRS credential key")
    pull.add_argument("--secret", required=True, help="source LRS credential secret")
    pull.add_argument("--since", help="only statements stored after this ISO 8601 timestamp")
    pull.add_argument("--page-size", type=int, default=500, help="statements per GET (default: 500)")
    pull.add_argument("--xapi-version", choices=("1.0.3", "2.0.0"),
                      help="X-Experience-API-Version to read with (default: 2.0.0 if the source's /xapi/about "
                           "lists a 2.0 version, else 1.0.3)")
    _target_arguments(pull, key_flags=("--to-key",), secret_flags=("--to-secret",))
    _run_arguments(pull)
    pull.set_defaults(handler=run_pull)

    from connectors.forward.cli import register as register_forward

    register_forward(subparsers, forward_opener)


def _target_arguments(parser: argparse.ArgumentParser, key_flags: tuple[str, ...], secret_flags: tuple[str, ...]) -> None:
    target = parser.add_argument_group("target LRS")
    target.add_argument("--to", metavar="URL", default=os.environ.get("LRS_TARGET_URL"),
                        help="target LRS base URL (default: $LRS_TARGET_URL)")
    target.add_argument(*key_flags, dest="target_key", metavar="KEY", default=os.environ.get("LRS_TARGET_KEY"),
                        help="target credential key (default: $LRS_TARGET_KEY)")
    target.add_argument(*secret_flags, dest="target_secret", metavar="SECRET", default=os.environ.get("LRS_TARGET_SECRET"),
                        help="target credential secret (default: $LRS_TARGET_SECRET)")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    run = parser.add_argument_group("run")
    run.add_argument("--batch-size", type=at_least_one, default=500, help="statements per POST (default: 500)")
    run.add_argument("--concurrency", type=at_least_one, default=4, help="batches in flight (default: 4)")
    run.add_argument("--max-attempts", type=at_least_one, default=8,
                     help="attempts per batch while the LRS fails or is unreachable (default: 8)")
    run.add_argument("--checkpoint", metavar="PATH",
                     help="checkpoint file (default: .lrs-checkpoints/<job>.json in the current directory)")
    run.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    run.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")


def _require_target(args: argparse.Namespace, parser_name: str) -> str | None:
    missing = [name for name, value in (("--to", args.to), ("target key", args.target_key),
                                        ("target secret", args.target_secret)) if not value]
    if missing:
        return f"lrs {parser_name}: missing {', '.join(missing)} (or LRS_TARGET_* environment variables)"
    return None


def run_import(args: argparse.Namespace) -> int:
    problem = _require_target(args, "import")
    if problem is None and args.source == "openedx" and not args.platform_url:
        problem = "lrs import: --platform-url is required with --from openedx"
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    files = [os.path.abspath(f) for f in args.files]
    job: dict[str, Any] = {"command": "import", "from": args.source, "files": sorted(files),
                           "to": statements_endpoint(args.to)}
    mapping: Mapping
    if args.source == "openedx":
        from connectors.openedx.mapping import OpenEdxOptions, map_tracking_line
        from connectors.openedx.source import tracking_log_source

        actor_map = _load_actor_map(args.actor_map) if args.actor_map else None
        options = OpenEdxOptions(args.platform_url, actor_id=args.actor_id, actor_map=actor_map)
        mapping = functools.partial(map_tracking_line, options=options)
        source: Source = tracking_log_source(files)
    else:
        from connectors.ndjson.mapping import map_line
        from connectors.ndjson.source import ndjson_source

        mapping = map_line
        source = ndjson_source(files)
    return _run(args, job, lambda session: source, mapping)


def run_pull(args: argparse.Namespace) -> int:
    problem = _require_target(args, "pull")
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    from connectors.lrspull.mapping import map_pulled
    from connectors.lrspull.source import LrsPullSource

    job = {"command": "pull", "from": statements_endpoint(args.url), "since": args.since,
           "to": statements_endpoint(args.to)}

    def make_source(session: Any) -> Source:
        return LrsPullSource(args.url, args.key, args.secret, since=args.since, page_limit=args.page_size,
                             session=session, max_attempts=args.max_attempts, xapi_version=args.xapi_version)

    return _run(args, job, make_source, map_pulled)


def _run(args: argparse.Namespace, job: dict[str, Any], make_source: Any, mapping: Mapping) -> int:
    path = args.checkpoint or default_checkpoint_path(job)
    checkpoint = CheckpointFile(path, job)
    if args.restart:
        checkpoint.clear()
    try:
        cursor = checkpoint.load()
    except CheckpointError as exc:
        print(f"lrs {job['command']}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if cursor is not None:
        print(f"resuming from checkpoint {path}", file=sys.stderr)
    options = RunOptions(batch_size=args.batch_size, max_in_flight=args.concurrency,
                         progress=False if args.no_progress else None, description=job["command"])
    summary = asyncio.run(_run_async(args, make_source, mapping, checkpoint, cursor, options))
    print(summary.render(), file=sys.stderr)
    print(f"checkpoint {path}", file=sys.stderr)
    if not summary.completed:
        return EXIT_STOPPED
    return EXIT_REJECTED if summary.rejected else EXIT_OK


async def _run_async(args: argparse.Namespace, make_source: Any, mapping: Mapping,
                     checkpoint: CheckpointFile, cursor: Cursor | None, options: RunOptions) -> Summary:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with LrsSink(args.to, args.target_key, args.target_secret, session=session,
                           max_attempts=args.max_attempts) as sink:
            return await run_connector(make_source(session), mapping, sink, checkpoint, cursor, options)


def default_checkpoint_path(job: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]
    return Path(".lrs-checkpoints") / f"{job['command']}-{digest}.json"


def _load_actor_map(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"user_id", "external_id"} <= set(reader.fieldnames):
            raise SystemExit(f"lrs import: {path} needs the columns user_id,external_id")
        return {row["user_id"].strip(): row["external_id"].strip() for row in reader if row["user_id"].strip()}
