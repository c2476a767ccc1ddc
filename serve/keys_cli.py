"""`flywheel keys create|list|revoke`: API keys, managed on the machine that holds the database."""

from __future__ import annotations

import argparse
import sys

from common.layout import add_data_dir_argument, db_path
from feedback import Store
from feedback.api_keys import ROLES, ApiKeys
from serve.cli_table import print_table

COLUMNS = ("id", "name", "prefix", "role", "rpm", "rater", "created_at", "revoked_at")


def _cell(row: dict, column: str) -> str:
    value = row[column]
    if column == "rpm":
        return str(value) if value else "unlimited"
    if column == "rater":
        return value or f"key:{row['id']}"
    if column.endswith("_at"):
        return value[:19].replace("T", " ") if value else "-"  # to the second, UTC
    return str(value)


def _print_table(rows: list[dict]) -> None:
    if not rows:
        print("no API keys: the gateway runs in local mode (loopback only, no keys needed)")
        return
    print_table(COLUMNS, [[_cell(r, c) for c in COLUMNS] for r in rows])


def run(args: argparse.Namespace) -> int:
    keys = ApiKeys(Store(db_path(args.data_dir)))
    try:
        if args.action == "create":
            row, secret = keys.create(args.name, args.role, args.rpm, args.rater)
            print(secret)
            print(
                f"flywheel: key {row['id']} ({row['role']}) created. The secret above will not "
                "be shown again: store it now. The gateway requires keys within 5 s.",
                file=sys.stderr,
            )
        elif args.action == "list":
            _print_table(keys.list())
        elif args.action == "revoke":
            row = keys.revoke(args.id)
            print(f"key {row['id']} ({row['name']}) revoked at {row['revoked_at']}")
            if not keys.any_active():
                print(
                    "flywheel: no active key is left: a gateway on loopback serves without keys "
                    "again; one bound to another address refuses every /v1 request",
                    file=sys.stderr,
                )
    except ValueError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    return 0


def add_keys_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="create, list or revoke API keys")
    actions = parser.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with the keys"
    )
    create = actions.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--role",
        choices=ROLES,
        default="user",
        help="user: chat, feedback, reading; admin: also change adapters, train, manage keys "
        "(default: %(default)s)",
    )
    create.add_argument(
        "--rpm", type=int, help="requests per minute allowed (default or 0: no limit)"
    )
    create.add_argument(
        "--rater",
        help="the rater name this key's judgements are stored under (default: key:<id>); "
        "a user key cannot record under any other name",
    )
    listing = actions.add_parser("list", help="every key (never the secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key by id (effective within 5 s)")
    revoke.add_argument("id", type=int, help="the key's id, from `flywheel keys list`")
    for action in (create, listing, revoke):
        add_data_dir_argument(action)
    parser.set_defaults(func=run)
