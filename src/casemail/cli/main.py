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
from typing import Any

from casemail.errors import CasemailError

# Order is the order of ``casemail --help``.
GROUPS = ["demo", "serve", "stores", "cases", "replay", "inspect", "sweep",
          "quarantine", "bench", "config_cmd"]


class CommandParser(argparse.ArgumentParser):
    """A parser that takes the options every command shares, so that
    ``casemail store list --config x.toml`` works as well as
    ``casemail --config x.toml store list``.

    Subcommands are made with the class of their parent, so each level
    has them; below the top the default is SUPPRESS, so an option not
    given there leaves the value given before the command alone.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        top = not isinstance(self, _Subcommand)
        self.add_argument(
            "--config", metavar="FILE", help="TOML settings file",
            default=None if top else argparse.SUPPRESS)
        self.add_argument(
            "-v", "--verbose", action="store_true", help="log debug detail",
            default=False if top else argparse.SUPPRESS)

    def add_subparsers(self, **kwargs: Any) -> Any:
        return super().add_subparsers(parser_class=_Subcommand, **kwargs)


class _Subcommand(CommandParser):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="casemail",
        description="Email gateway for support cases.")
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
