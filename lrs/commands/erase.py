"""``lrs erase learner``: erase one learner's personal data (docs/privacy.md)."""

from __future__ import annotations

import argparse
import sys

from lrs.commands.common import command_pool, load_settings, login_name, run_async, setup


_EXAMPLE_AGENT = '{"mbox": "mailto:lan@example.org"}'


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "erase", help="erase personal data (crypto-shredding)",
        description="Erase personal data by destroying its keys; the log and its anchors still verify.",
    )
    sub = parser.add_subparsers(dest="erase_command", metavar="WHAT", required=True)
    learner = sub.add_parser(
        "learner", help="erase one learner",
        description=(
            "Destroy the learner's key (their identifiers and names in every stored Statement become "
            "unreadable), delete their State and Agent Profile documents and the attachments only their "
            "Statements carry, and record the erasure (pseudonym, who, when, why) in the log."
        ),
    )
    learner.add_argument("agent", metavar="AGENT",
                         help=f"the learner as an xAPI Agent in JSON, e.g. '{_EXAMPLE_AGENT}'")
    learner.add_argument("--tenant", required=True, help="the tenant whose records are erased")
    learner.add_argument("--reason", required=True,
                         help="why (kept in the log for good: no word of the learner's name or identifier), "
                         "e.g. 'request 2026-117'")
    learner.set_defaults(handler=_learner)


def _learner(args: argparse.Namespace) -> int:
    from lrs.documents.params import parse_agent
    from lrs.config import ConfigError
    from lrs.privacy.master import PrivacyKeyError, load
    from lrs.store.erasure import ErasureRefused, erase_learner
    from lrs.store.learner_keys import LearnerKeys
    from lrs.xapi.errors import XapiError

    try:
        agent, _key = parse_agent(args.agent, "AGENT")
    except XapiError as exc:  # e.g. the roster's key form, mbox:mailto:lan@example.org
        print(f"lrs erase learner: {exc.message}; give the learner as an xAPI Agent in JSON, "
              f"e.g. '{_EXAMPLE_AGENT}'", file=sys.stderr)
        return 2
    settings = load_settings()
    setup(settings, one_shot=True)
    try:
        master = load(settings.privacy_master_key_file)  # never a new key: it would erase nobody
    except (ConfigError, PrivacyKeyError, OSError) as exc:
        print(f"lrs erase learner: {exc}", file=sys.stderr)
        return 1
    if master is None:
        print(f"lrs erase learner: no privacy key at {settings.privacy_master_key_file}: nothing sealed can be"
              " erased without it (LRS_PRIVACY_KEY_FILE)", file=sys.stderr)
        return 1

    async def main():
        async with command_pool(settings, application_name="lrs-erase", migrations=args.migrations) as pool:
            keyring = LearnerKeys(pool, master)
            return await erase_learner(pool, keyring, args.tenant, agent, reason=args.reason,
                                       by=f"cli:{login_name()}")

    try:
        erasure = run_async(main)
    except ErasureRefused as exc:
        print(f"lrs erase learner: nothing erased: {exc}", file=sys.stderr)
        return 1
    print(
        f"erased {erasure.pseudonym} in tenant {args.tenant}: key generation(s) "
        f"{', '.join(map(str, erasure.generations))} destroyed, {erasure.documents} document(s) and "
        f"{erasure.attachments} attachment(s) deleted"
        + (f", {len(erasure.linked)} linked identifier(s) erased with it" if erasure.linked else "")
        + f"; erasure event at position {erasure.position}"
    )
    return 0
