"""``lrs report``: the per-agency or per-unit certification report as files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = subparsers.add_parser(
        "report",
        help="write a unit's certification report (CSV or XLSX)",
        description="Write the certification report of UNIT for a programme, as GET "
        "/competency/units/UNIT/report serves it: a summary (the unit with everything below it, then "
        "one row per agency or per unit: headcount, certified, rate, target in force, needed, gap) and "
        "the list of rostered learners not certified with what is missing and why.  --format xlsx "
        "writes both parts into one workbook; --format csv writes OUTPUT (the summary) and "
        "OUTPUT's name with -not-certified before the suffix (the list).  Meaning of each number: "
        "docs/competency.md.",
    )
    report.add_argument("unit", metavar="UNIT", help="the unit id (e.g. a ministry)")
    report.add_argument("--program", help="programme IRI (default: the only one loaded)")
    report.add_argument("--version", dest="program_version", help="programme version (when several are loaded)")
    report.add_argument("--by", choices=["agency", "unit"], default="agency", help="one row per agency (default) or per unit")
    report.add_argument("--format", choices=["csv", "xlsx"], default="xlsx", help="file format (default: xlsx)")
    report.add_argument("--output", "-o", type=Path, help="file to write (default: UNIT-BY-report.FORMAT here)")
    report.add_argument("--language", choices=["en", "vi"], default="en",
                        help="en (default: the machine form) or vi (for officials: Vietnamese headers, words beside "
                        "the codes; a CSV starts with the byte order mark Excel needs to show Vietnamese)")
    report.add_argument("--tenant", default="default", help="the tenant (default: default)")
    report.add_argument("--frameworks", metavar="DIR", type=Path, action="append",
                        help="framework documents to use (repeatable; default: the live ones)")
    report.add_argument("--stale-ok", action="store_true",
                        help="write the report even when the projection is outdated or behind the log "
                        "(it then says so); by default such a report is refused")
    report.set_defaults(handler=_report)


def output_paths(output: Path, fmt: str) -> tuple[Path, Path | None]:
    """The summary's file and, for CSV, the not-certified list's."""
    if fmt == "xlsx":
        return output, None
    return output, output.with_name(f"{output.stem}-not-certified{output.suffix or '.csv'}")


def _report(args: argparse.Namespace) -> int:
    from lrs.commands.common import command_pool, load_settings, run_async, setup
    from projections.cli import _catalog
    from projections.competency.queries import QueryError, resolve_program

    catalog = _catalog(args)
    if catalog is None:
        return 1
    try:
        program = resolve_program(catalog, args.program, args.program_version)
    except QueryError as exc:
        print(f"lrs report: {exc.message}", file=sys.stderr)
        return 1
    output = args.output or Path(f"{args.unit}-{args.by}-report.{args.format}")
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        from projections.competency.report_query import unit_report
        from projections.competency.reports import to_csv, to_xlsx, with_identifiers
        from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX
        from projections.units.display import DisplayIds
        from projections.supervisor import checked_freshness, until_rebuilt

        async with command_pool(settings, application_name="lrs-report", migrations=args.migrations) as pool:
            fresh = await checked_freshness(pool, catalog, settings.competency_stale_after_s)
            if not fresh.serve and not args.stale_ok:
                print(f"lrs report: the competency projection is {fresh.state}: {fresh.reason} (position "
                      f"{fresh.position} of {fresh.log_head}); --stale-ok writes the report anyway", file=sys.stderr)
                return 1
            try:
                report = await unit_report(pool, catalog, args.tenant, args.unit, program=program, by=args.by)
            except QueryError as exc:
                print(f"lrs report: {exc.told(until_rebuilt(fresh))}", file=sys.stderr)
                return 1
            learner_keys = None
            if any(r.learner.startswith(PSEUDONYM_KEY_PREFIX) for r in report.not_certified):
                # sealed learners, shown by the identifier the roster holds (docs/privacy.md)
                from lrs.config import ConfigError
                from lrs.privacy.master import PrivacyKeyError
                from lrs.store.statement_opener import keys_for_reading

                try:  # the store's key, never a new one (which would open nothing)
                    learner_keys = await keys_for_reading(pool, settings.privacy_master_key_file)
                except (ConfigError, PrivacyKeyError, OSError) as exc:
                    print(f"lrs report: {exc}", file=sys.stderr)
                    return 1
            report = with_identifiers(
                report, await DisplayIds().shown(pool, learner_keys, args.tenant, [r.learner for r in report.not_certified])
            )
        summary, learners = output_paths(output, args.format)
        try:
            if args.format == "xlsx":
                summary.write_bytes(to_xlsx(report, args.language))
            else:
                summary.write_text(to_csv(report, "summary", args.language), encoding="utf-8", newline="")
                assert learners is not None
                learners.write_text(to_csv(report, "not-certified", args.language), encoding="utf-8", newline="")
        except OSError as exc:
            print(f"lrs report: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 1
        written = ", ".join(str(p) for p in (summary, learners) if p is not None)
        total = report.summary[0]
        print(
            f"wrote {written}: {args.unit} {total.certified}/{total.headcount} certified, "
            f"{len(report.not_certified)} not certified listed (log position {report.position})"
            + ("" if fresh.serve else f"; NOT CURRENT: the projection is {fresh.state} ({fresh.reason})")
        )
        return 0

    return run_async(main)
