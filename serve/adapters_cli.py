"""`flywheel adapters list|add|promote|rollback|rm`: the registry of a running gateway."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.gateway_client import GatewayRefused, GatewayUnreachable, add_gateway_arguments, call
from serve.cli_table import print_table

COLUMNS = ("engine_name", "status", "sha256", "job_id", "dataset_hash", "created_at")


def _print_table(rows: list[dict]) -> None:
    if not rows:
        print("no adapters registered; train one with `./flywheel train` or `adapters add`")
        return
    cells = [
        [str(r.get(c) or "")[:19] if c != "sha256" else r[c][:12] for c in COLUMNS] for r in rows
    ]
    print_table(COLUMNS, cells)


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            query = "?include_retired=true" if args.all else ""
            _print_table(call(args, "GET", f"/v1/adapters{query}"))
            return 0
        if args.action == "add":
            body = {"name": args.name, "path": str(Path(args.path).resolve())}
            row = call(args, "POST", "/v1/adapters", body)
            print(f"registered {row['engine_name']} ({row['status']}); promote it to make it live")
        elif args.action == "promote":
            body = {"version": args.version} if args.version else None
            change = call(args, "POST", f"/v1/adapters/{args.name}/promote", body)
            print(f"live: {change['live']} (was {change['previous']})")
        elif args.action == "rollback":
            change = call(args, "POST", f"/v1/adapters/{args.name}/rollback")
            print(f"live: {change['live']}; retired {change['retired']}")
        elif args.action == "rm":
            change = call(args, "DELETE", f"/v1/adapters/{args.name}")
            print(f"retired and unloaded: {', '.join(change['retired'])}")
    except (GatewayUnreachable, GatewayRefused) as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 1
    return 0


def add_adapters_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("adapters", help="list, add, promote, roll back or remove adapters")
    actions = parser.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with the registry"
    )

    listing = actions.add_parser("list", help="registered versions and their status")
    listing.add_argument("--all", action="store_true", help="include retired versions")
    add = actions.add_parser("add", help="register a PEFT LoRA folder as a new candidate version")
    add.add_argument("name", help="adapter name (letters, digits, _ . -)")
    add.add_argument("path", help="the folder holding adapter_config.json")
    promote = actions.add_parser("promote", help="make a version the live model")
    promote.add_argument("name", help="adapter name")
    promote.add_argument("--version", type=int, help="version to promote (default: newest)")
    rollback = actions.add_parser("rollback", help="return live to the version before")
    rollback.add_argument("name", help="the adapter that is live now")
    remove = actions.add_parser("rm", help="retire and unload an adapter (name or name@N)")
    remove.add_argument("name", help="adapter name, or name@N for one version")
    for action in (listing, add, promote, rollback, remove):
        add_gateway_arguments(action)
    parser.set_defaults(func=run)
