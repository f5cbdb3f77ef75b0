"""Signed reply addresses, Message-IDs and envelope senders."""

from __future__ import annotations

import pytest

from casemail.addresses import MAX_LOCAL_PART, Party, Signer
from casemail.errors import AddressError

KEY = {"1": "first-key-0123456789abcdef"}


def signer(keys: dict[str, str] = KEY) -> Signer:
    return Signer(keys, "reply.example.test", fallback_locals=("notifications",))


@pytest.mark.parametrize("party", [Party.CUSTOMER, Party.MERCHANT])
@pytest.mark.parametrize("case_id", [1, 36, 123456, 2**63 - 1])
def test_reply_address_round_trips(case_id: int, party: Party) -> None:
    address = signer().reply_address(case_id, party)
    target = signer().read_reply_address(address)
    assert (target.case_id, target.party) == (case_id, party)


def test_reply_address_fits_rfc5321_local_part_for_the_largest_id() -> None:
    address = signer().reply_address(2**63 - 1, Party.MERCHANT)
    assert len(address.split("@")[0]) <= MAX_LOCAL_PART


def test_reply_address_survives_a_change_of_case() -> None:
    address = signer().reply_address(42, Party.CUSTOMER)
    assert signer().read_reply_address(address.upper()).case_id == 42


def test_tag_carries_at_least_80_bits() -> None:
    token = signer().reply_address(7, Party.CUSTOMER).split("@")[0]
    tag = token.split(".")[-1][1:]  # after the key version
    assert len(tag) * 5 >= 80  # base32: five bits a character


@pytest.mark.parametrize("mangle", [
    lambda a: a.replace(".c.", ".m."),  # other party, same tag
    lambda a: a.replace("case+", "case+1"),  # other case
    lambda a: a[:-25] + ("a" if a[-25] != "a" else "b") + a[-24:],  # tag bit
    lambda a: a.split("+")[0] + "@reply.example.test",
    lambda a: a.replace("reply.example.test", "evil.example"),
    lambda a: a.replace("case+", "x+"),
])
def test_forged_reply_address_is_refused(mangle) -> None:
    forged = mangle(signer().reply_address(1234, Party.CUSTOMER))
    with pytest.raises(AddressError):
        signer().read_reply_address(forged)


@pytest.mark.parametrize("spelling", ["0", "+", "0_", " "])
def test_only_one_spelling_of_a_signed_number_is_ours(spelling: str) -> None:
    """``int()`` reads "01", "+1", "0_1" and " 1" as 1: each would be
    another address for the same case, and one mail sent to two of them
    two deliveries, filed twice."""
    address = signer().reply_address(7, Party.CUSTOMER)
    local, _, domain = address.partition("@")
    # case+<case>.<party>.<version><tag>: respell the version.
    head, _, signed = local.rpartition(".")
    respelled = f"{head}.{spelling[:-1] if spelling == '0_' else spelling}"
    respelled += ("_" if spelling == "0_" else "") + signed
    assert signer().read_reply_address(address).case_id == 7
    with pytest.raises(AddressError):
        signer().read_reply_address(f"{respelled}@{domain}")
    # The case number too.
    with pytest.raises(AddressError):
        signer().read_reply_address(address.replace("case+", "case+0", 1))


def test_other_key_cannot_forge() -> None:
    evil = Signer({"1": "someone-elses-key-0123456789"}, "reply.example.test")
    with pytest.raises(AddressError):
        signer().read_reply_address(evil.reply_address(5, Party.CUSTOMER))


def test_addresses_signed_with_an_old_key_work_after_rotation() -> None:
    old = signer().reply_address(99, Party.MERCHANT)
    rotated = signer({"1": KEY["1"], "2": "second-key-0123456789abcdef"})
    assert rotated.read_reply_address(old).case_id == 99
    new = rotated.reply_address(99, Party.MERCHANT)
    assert new != old
    with pytest.raises(AddressError):  # the old signer does not know key 2
        signer().read_reply_address(new)


def test_refusal_does_not_say_why() -> None:
    messages = set()
    for forged in ["case+zz.c.1aaaaaaaaaaaaaaaa@reply.example.test",
                   signer().reply_address(1, Party.CUSTOMER).replace("1.c", "2.c")]:
        with pytest.raises(AddressError) as err:
            signer().read_reply_address(forged)
        messages.add(str(err.value))
    assert messages == {"not a valid address"}


def test_message_id_names_case_and_recipient_party() -> None:
    mid = signer().message_id(77, Party.MERCHANT)
    assert mid.startswith("<") and mid.endswith("@reply.example.test>")
    ref = signer().read_message_id(mid)
    assert (ref.case_id, ref.party) == (77, Party.MERCHANT)
    assert signer().message_id(77, Party.MERCHANT) != mid  # fresh each time


def test_forged_message_id_is_refused() -> None:
    mid = signer().message_id(77, Party.MERCHANT)
    with pytest.raises(AddressError):
        signer().read_message_id(mid.replace("<25.", "<26."))  # 77 → 78
    with pytest.raises(AddressError):
        signer().read_message_id("<abc@mail.gmail.example>")


def test_envelope_sender_round_trips_and_resists_forgery() -> None:
    verp = signer().envelope_sender(4242)
    assert signer().is_bounce_address(verp)
    assert signer().read_envelope_sender(verp) == 4242
    with pytest.raises(AddressError):
        signer().read_envelope_sender(verp.replace("bounce+39u", "bounce+39v"))


def test_base_addresses_are_the_token_less_fallbacks() -> None:
    s = signer()
    assert s.is_base_address("case@reply.example.test")
    assert s.is_base_address("Notifications@Reply.Example.Test")
    assert not s.is_base_address("case@other.example")
    assert not s.is_base_address("info@reply.example.test")
