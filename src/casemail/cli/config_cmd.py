"""``casemail config``: show the settings in force, or every setting."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import make_url

from casemail.cli.settings import command_settings
from casemail.config import example_toml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print settings")
    p.add_argument("--example", action="store_true",
                   help="print every setting with its description")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.example:
        print(example_toml(), end="")
        return 0
    settings = command_settings(args)
    shown = settings.model_dump(mode="json")
    # What is shown may be pasted into a ticket or a chat: no secret in it.
    shown["signing_keys"] = {k: "***" for k in shown["signing_keys"]}
    if shown["relay"].get("password"):
        shown["relay"]["password"] = "***"
    shown["listener"]["auth_users"] = {
        user: "***" for user in shown["listener"].get("auth_users", {})}
    shown["database_url"] = make_url(settings.db_url).render_as_string(
        hide_password=True)
    for key, value in sorted(shown.items()):
        print(f"{key} = {value}")
    return 0
