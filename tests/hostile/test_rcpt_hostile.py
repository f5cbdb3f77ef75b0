"""Reply addresses tampered with, guessed or made up, at ``RCPT``: every
one is refused with the same ``550 5.1.1`` and the same words, whether
or not its case exists, and what the listener remembers of the cases it
has seen never turns a refusal into an acceptance or back.
"""

from __future__ import annotations

import gc
import smtplib
from pathlib import Path

import pytest
from hostile_serve import gateway_port, open_cases

from casemail.addresses import Party
from casemail.cases.content import Content
from casemail.config import Settings, load_settings
from casemail.db.engine import transaction
from casemail.errors import AddressError, UnknownCase
from casemail.intake.pipeline import Pipeline
from casemail.runtime import Runtime

REFUSED = (550, b"5.1.1 No such case: this reply address is not valid")
ACCEPTED = (250, b"2.1.5 Recipient ok")
DOMAIN = "reply.example.test"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-rcpt-key-0123456789abcdef"},
        listener={"host": "127.0.0.1", "port": 0})


def answers(port: int, addresses: list[str]) -> list[tuple[int, bytes]]:
    """The RCPT answer to each address, a few per session so that the
    limit on refused recipients never cuts one off."""
    out = []
    for at in range(0, len(addresses), 10):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mx.prober.example")
            assert client.mail("prober@attacker.example")[0] == 250
            out.extend(client.rcpt(a) for a in addresses[at:at + 10])
    return out


def parts(address: str) -> tuple[str, str, str, str]:
    """case, party code, key version and tag of a reply address."""
    local = address.split("@")[0]
    case, code, signed = local.split("+", 1)[1].split(".")
    return case, code, signed[0], signed[1:]


def test_tampered_and_unknown_addresses_all_hear_the_same_refusal(
        runtime: Runtime, port: int) -> None:
    cases = open_cases(runtime, 2)
    signer = runtime.signer
    real = signer.reply_address(cases[0], Party.CUSTOMER)
    other = signer.reply_address(cases[1], Party.MERCHANT)
    case, code, version, tag = parts(real)
    flipped = tag[:-1] + ("a" if tag[-1] != "a" else "b")

    def token(c: str, p: str, v: str, t: str) -> str:
        return f"case+{c}.{p}.{v}{t}@{DOMAIN}"

    tampered = [
        token(case, code, version, flipped),  # one letter of the tag
        token(parts(other)[0], code, version, tag),  # another case's id
        token(case, "m", version, tag),  # the other party, same tag
        token(case, code, "2", tag),  # a key version we do not have
        token(case, code, version, tag[:-2]),  # a tag cut short
        token(case, code, version, tag + "aa"),  # a tag made longer
        token("0" + case, code, version, tag),  # the id written otherwise
        token("-" + case, code, version, tag),
        token(case, "s", version, tag),  # a party replies never name
        f"case+{case}.{code}@{DOMAIN}",  # no signature at all
        f"case+{case}.{code}.{version}{tag}.x@{DOMAIN}",  # one part more
        f"case+@{DOMAIN}",
        f"case+..@{DOMAIN}",
        f"case+{'z' * 40}.c.1{'a' * 16}@{DOMAIN}",  # a huge, forged id
        f"case+{'9' * 30}.c.1{tag}@{DOMAIN}",
        f"bounce+{case}.{version}{tag}@{DOMAIN}",  # a reply token as VERP
        f"bounce+zzzzzzzz.1{'a' * 16}@{DOMAIN}",
        f"nobody+{case}.{code}.{version}{tag}@{DOMAIN}",
    ]
    never_opened = [signer.reply_address(n, party)
                    for n in (cases[-1] + 1, cases[-1] + 1000, 2**62)
                    for party in (Party.CUSTOMER, Party.MERCHANT)]

    assert answers(port, tampered + never_opened) == \
        [REFUSED] * (len(tampered) + len(never_opened))
    # The real ones still work, in any case of letters, over and over
    # (from the listener's memory the second time).
    assert answers(port, [real, real.upper(), other, real]) == \
        [ACCEPTED] * 4


def test_a_case_refused_before_it_existed_is_taken_once_it_does(
        runtime: Runtime, port: int) -> None:
    """A reply address of the next case to be opened is refused; once
    the case is opened, the same address is taken: a refusal is never
    remembered. And an accepted case stays accepted beside refusals."""
    [first] = open_cases(runtime, 1)
    signer = runtime.signer
    upcoming = [signer.reply_address(first + 1, p)
                for p in (Party.CUSTOMER, Party.MERCHANT)]
    known = signer.reply_address(first, Party.CUSTOMER)
    assert answers(port, [known, *upcoming, known]) == [
        ACCEPTED, REFUSED, REFUSED, ACCEPTED]

    with transaction(runtime.sessions) as s:
        case = runtime.service.open_case(
            s, store_slug="nordlicht", order_ref="NA-9001",
            customer_address="late@customer.example", customer_name="Late",
            subject="Second licence",
            content=Content.typed("This one too.", source="api"))
        opened = case.id
    assert opened == first + 1  # the id the refused addresses named
    assert answers(port, [*upcoming, known]) == [ACCEPTED] * 3


def test_a_signed_address_for_an_impossible_case_id_is_refused(
        runtime: Runtime, port: int) -> None:
    """Only our key makes an address for a case id past 2**63 - 1, and
    no database holds such a row: it is refused like any unknown case,
    never answered 451 (which would make the sender retry for days)."""
    signer = runtime.signer
    huge = [signer.reply_address(n, Party.CUSTOMER)
            for n in (2**63 - 1, 2**63, 2**64, 36**20)]
    assert answers(port, huge) == [REFUSED] * len(huge)


def test_only_a_case_seen_before_is_routed_without_the_database(
        runtime: Runtime) -> None:
    """The event loop routes a recipient itself only when no database
    is needed; a case it has not seen goes to ``route``, which checks."""
    [case] = open_cases(runtime, 1)
    pipeline = Pipeline(runtime)
    address = runtime.signer.reply_address(case, Party.CUSTOMER)
    unseen = runtime.signer.reply_address(case + 1, Party.CUSTOMER)

    assert pipeline.known_route(address) is None
    assert pipeline.known_route(unseen) is None
    assert pipeline.route(address).case_id == case
    assert pipeline.known_route(address) == pipeline.route(address)
    with pytest.raises(UnknownCase):
        pipeline.route(unseen)
    assert pipeline.known_route(unseen) is None  # a refusal is not kept
    ours = runtime.settings.reply_domain
    assert pipeline.known_route(f"postmaster@{ours}") is not None
    with pytest.raises(AddressError):
        pipeline.known_route(f"case+x.c1zzzz@{ours}")


def test_what_the_gateway_built_at_start_is_left_out_of_the_collector(
        runtime: Runtime) -> None:
    """Full collections would walk every module, mapper and compiled
    statement again and again, a pause for every waiting session each
    time: what exists once the listener runs is frozen."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with gateway_port(runtime):
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
