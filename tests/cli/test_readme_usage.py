"""The README's usage lines say what ``--help`` says: every option, and
which of them are required.

Each command line in the README's "Command line" table is matched to its
parser; ``--json`` (described once under the table) and the options every
command shares are left out.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from casemail.cli.demo import load_scenario
from casemail.cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
SHARED = {"--help", "--config", "--verbose", "--json"}


def usage_lines() -> list[str]:
    text = README.read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    lines = []
    for row in section.splitlines():
        if not row.startswith("| `casemail "):
            continue
        first_cell = re.split(r"(?<!\\)\|", row)[1]
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.replace("\\|", "|")
            lines.append(words if words.startswith("casemail ")
                         else f"casemail {words}")
    return lines


def parser_for(words: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words[1:]:
        commands = [a for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction)]
        if not commands or word not in commands[0].choices:
            break
        parser = commands[0].choices[word]
    return parser


def options_in(line: str) -> dict[str, bool]:
    """Each option the line names, and whether it is shown as required
    (outside any [brackets])."""
    found = {}
    for match in re.finditer(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b", line):
        before = line[:match.start()]
        found[match.group(1)] = before.count("[") == before.count("]")
    return found


@pytest.mark.parametrize("line", usage_lines())
def test_usage_line_matches_the_parser(line: str) -> None:
    parser = parser_for(line.split())
    in_parser = {}
    for action in parser._actions:
        if not action.option_strings:
            continue
        name = max(action.option_strings, key=len)
        if name not in SHARED:
            in_parser[name] = action.required
    shown = {}
    for option, required in options_in(line).items():
        long = next((max(a.option_strings, key=len)
                     for a in parser._actions if option in a.option_strings),
                    option)
        if long not in SHARED:
            shown[long] = required
    assert shown == in_parser


def test_every_command_has_a_usage_line() -> None:
    lines = usage_lines()
    parser = build_parser()
    commands = next(a for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    for name in commands.choices:
        if name == "bench":
            continue  # described in the Benchmark section
        assert any(line.split()[1] == name for line in lines), name


def test_the_quick_start_counts_the_demo_cases_as_the_demo_does() -> None:
    """The demo prints how many cases it opened in how many stores; the
    Quick start says the same numbers."""
    scenario = load_scenario()
    words = ["no", "one", "two", "three", "four", "five", "six", "seven",
             "eight", "nine", "ten"]
    quick = " ".join(README.read_text().split("## Quick start", 1)[1]
                     .split("\n## ", 1)[0].split())
    assert (f"opens the {words[len(scenario.cases)]} cases of "
            f"`fixtures/expected.toml` in {words[len(scenario.stores)]} "
            "demo stores") in quick
