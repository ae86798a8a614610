"""``lrs credentials``: create, list and revoke API credentials."""

from __future__ import annotations

import argparse
import sys

from lrs.auth import SCOPES, hash_secret, new_key_and_secret, validate_scopes, validate_tenant
from lrs.commands.common import command_pool, load_settings, run_async, setup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "credentials", help="manage API credentials", description="Manage HTTP Basic credentials."
    )
    sub = parser.add_subparsers(dest="credentials_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a credential and print its key and secret",
                            description="Create a credential; the secret is printed once and stored only as a hash.")
    create.add_argument("--tenant", default="default", help="tenant the credential belongs to (default: default)")
    create.add_argument("--scope", dest="scopes", nargs="+", default=None, metavar="SCOPE",
                        help=f"one or more of: {', '.join(sorted(SCOPES))} (default: all)")
    create.add_argument("--name", help="human-readable name, recorded in the authority of statements")
    create.set_defaults(handler=_create)

    listing = sub.add_parser("list", help="list credentials (never secrets)", description="List credentials.")
    listing.add_argument("--tenant", help="only this tenant")
    listing.set_defaults(handler=_list)

    revoke = sub.add_parser("revoke", help="revoke a credential", description="Revoke a credential by key.")
    revoke.add_argument("key")
    revoke.set_defaults(handler=_revoke)


def _with_pool(settings, action, migrations=()):
    async def main():
        async with command_pool(settings, application_name="lrs-credentials", migrations=migrations) as pool:
            return await action(pool)

    return run_async(main)


def _create(args: argparse.Namespace) -> int:
    from lrs.store import credentials

    try:
        tenant = validate_tenant(args.tenant)
        scopes = validate_scopes(args.scopes or ["all"])
    except ValueError as exc:
        print(f"lrs credentials create: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    setup(settings, one_shot=True)
    key, secret = new_key_and_secret()
    _with_pool(settings, lambda pool: credentials.insert_credential(
        pool, key=key, secret_hash=hash_secret(secret), tenant=tenant, scopes=sorted(scopes), name=args.name), args.migrations)
    print(f"key: {key}\nsecret: {secret}\ntenant: {tenant}\nscopes: {' '.join(sorted(scopes))}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from lrs.store import credentials

    settings = load_settings()
    setup(settings, one_shot=True)
    records = _with_pool(settings, lambda pool: credentials.list_credentials(pool, tenant=args.tenant), args.migrations)
    for record in records:
        state = "active" if record.active else "revoked"
        print(f"{record.key}\t{record.tenant}\t{' '.join(record.scopes)}\t{state}\t{record.name or ''}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from lrs.store import credentials

    settings = load_settings()
    setup(settings, one_shot=True)
    found = _with_pool(settings, lambda pool: credentials.revoke_credential(pool, args.key), args.migrations)
    if not found:
        print(f"lrs credentials revoke: no active credential {args.key!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key}")
    return 0
