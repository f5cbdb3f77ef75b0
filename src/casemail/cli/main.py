"""The ``casemail`` command: one module per command group.

Each group module has ``register(subparsers)``, which adds its commands and
sets ``func`` on each; ``main`` parses and calls it. A command returns the
process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from casemail.errors import CasemailError

# Order is the order of ``casemail --help``.
GROUPS = ["demo", "serve", "stores", "cases", "replay", "inspect", "sweep",
          "quarantine", "bench", "config_cmd"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casemail",
        description="Email gateway for support cases.")
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        try:
            module = importlib.import_module(f"casemail.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"casemail.cli.{name}":
                continue  # a group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CasemailError as exc:
        print(f"casemail: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
