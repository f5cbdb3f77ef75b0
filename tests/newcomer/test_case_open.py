"""'case open' refuses what no case can be opened with — an empty order
or subject, a customer that is not one mail address, a field longer than
the database keeps — in one line that names the field, and opens
nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]

GOOD = {"--order": "A-1", "--customer": "Lena Fischer <lena@cust.example>",
        "--subject": "Key never arrived"}

BAD = [
    ("--order", "", "order reference is empty"),
    ("--order", "  \t", "order reference is empty"),
    ("--order", "A" * 101, "order reference is 101 characters long"),
    ("--subject", "", "subject is empty"),
    ("--subject", " \n ", "subject is empty"),
    ("--customer", "Lena Fischer", "customer address 'Lena Fischer' is not"),
    ("--customer", "lena@", "customer address 'lena@' is not"),
    ("--customer", "Lena <lena@", "customer address 'Lena <lena@' is not"),
    ("--customer", "lena@cust.example, ben@cust.example",
     "is not a mail address"),
    ("--customer", "lena fischer@cust.example", "is not a mail address"),
]


@pytest.mark.parametrize(("option", "value", "said"), BAD,
                         ids=[f"{o}={v[:12]!r}" for o, v, _ in BAD])
def test_a_case_needs_an_order_a_subject_and_a_mail_address(
        config: Path, cli: Run, option: str, value: str, said: str) -> None:
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    fields = {**GOOD, option: value}
    code, out, err = cli(config, "case", "open", "--store", "acme",
                         "--text", "Where is my key?",
                         *(x for pair in fields.items() for x in pair))
    assert code == 1, out
    assert said in err
    assert len(err.strip().splitlines()) == 1
    assert cli(config, "case", "list")[1].strip() == "no cases"


def test_the_fields_are_kept_without_the_blanks_around_them(
        config: Path, cli: Run) -> None:
    assert cli(config, "store", "add", "acme", "--name", "Acme",
               "--sender", "support@acme.example")[0] == 0
    code, out, err = cli(config, "case", "open", "--store", "acme",
                         "--order", " A-1 ", "--subject", "Key \n",
                         "--customer", " lena@cust.example ",
                         "--text", "Where is my key?", "--json")
    assert code == 0, err
    assert '"order": "A-1"' in out and '"subject": "Key"' in out
    assert '"address": "lena@cust.example"' in out
