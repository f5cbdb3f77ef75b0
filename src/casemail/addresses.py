"""Signed reply addresses, Message-IDs and envelope senders.

Three kinds of address carry a signature, so that nobody can guess or forge
one that is not theirs:

- the reply address of a case for one party,
  ``case+<case>.<party><key>.<tag>@<reply domain>``;
- the Message-ID of every mail we send, which names the case and the party
  it went to, so that a reply whose token got lost can still be threaded by
  its ``In-Reply-To``/``References``;
- the envelope sender of every mail we send (VERP), which names the outbox
  entry, so that a bounce says exactly which mail failed.

The tag is an HMAC-SHA256 truncated to 80 bits and written in lower-case
base32: mail servers and clients change the case of local parts (RFC 5321
2.4 lets them), so everything is compared in lower case. The key version
is part of the signed text; every configured key verifies, the newest signs.
A failed check says only "not a valid address": whether the case exists is
never looked at before the signature holds.

``is_mail_address`` says what a bare address given to us looks like (a
store's sender, a customer's address).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from casemail.errors import AddressError

TAG_BYTES = 10  # 80 bits
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
# local@domain and nothing else: a display name, a bracket or a second
# address would break every header and envelope the address goes into.
_BARE_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")


class Party(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"
    STAFF = "staff"
    SYSTEM = "system"


_PARTY_CODE = {Party.CUSTOMER: "c", Party.MERCHANT: "m"}
_CODE_PARTY = {v: k for k, v in _PARTY_CODE.items()}


@dataclass(frozen=True)
class ReplyTarget:
    case_id: int
    party: Party


@dataclass(frozen=True)
class SentRef:
    """What one of our Message-IDs says: the case and who it was sent to."""

    case_id: int
    party: Party


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number < 0:
        raise ValueError("negative id")
    out = ""
    while True:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
        if number == 0:
            return out


# The largest id a row can have (BIGINT). Every id we sign names a row,
# so a larger one was never ours, however it is signed; the database
# would refuse to compare with it rather than find nothing.
MAX_ID = 2**63 - 1


def _from_b36(text: str) -> int:
    try:
        number = int(text, 36)
    except ValueError:
        raise AddressError("not a valid address") from None
    # Only the one spelling we write: int() would also take "01", "+1"
    # and "0_1", and one mail sent to two spellings of an address would
    # then be two deliveries, filed twice.
    if number > MAX_ID or _b36(number) != text.lower():
        raise AddressError("not a valid address")
    return number


class Signer:
    """Makes and checks every signed address for one set of keys."""

    def __init__(self, keys: dict[str, str], domain: str, *,
                 reply_local: str = "case", bounce_local: str = "bounce",
                 fallback_locals: tuple[str, ...] = ()) -> None:
        if not keys:
            raise AddressError("no signing keys configured")
        self._keys = {int(v): k.encode() for v, k in keys.items()}
        self._current = max(self._keys)
        self.domain = domain.lower()
        self.reply_local = reply_local.lower()
        self.bounce_local = bounce_local.lower()
        # Token-less addresses that are still ours: the bare ``case@`` left
        # when a client drops the ``+token``, and our notification sender.
        self.fallback_locals = {self.reply_local} | {
            x.lower() for x in fallback_locals}

    # -- the signature -----------------------------------------------------

    def _tag(self, version: int, text: str) -> str:
        key = self._keys.get(version)
        if key is None:
            raise AddressError("not a valid address")
        mac = hmac.new(key, text.encode(), hashlib.sha256).digest()[:TAG_BYTES]
        return base64.b32encode(mac).decode().lower()

    def _sign(self, text: str) -> str:
        return _b36(self._current) + self._tag(self._current, text)

    def _check(self, signed: str, text: str) -> None:
        # The version is everything before the fixed-size tag.
        tag_len = len(self._tag(self._current, ""))
        version_part, tag = signed[:-tag_len], signed[-tag_len:]
        if not version_part:
            raise AddressError("not a valid address")
        expected = self._tag(_from_b36(version_part), text)
        if not hmac.compare_digest(expected, tag):
            raise AddressError("not a valid address")

    # -- reply addresses ---------------------------------------------------

    def reply_address(self, case_id: int, party: Party) -> str:
        code = _PARTY_CODE[party]
        case = _b36(case_id)
        signed = self._sign(f"reply:{case}:{code}")
        local = f"{self.reply_local}+{case}.{code}.{signed}"
        if len(local) > MAX_LOCAL_PART:
            raise AddressError("reply address would exceed 64 characters")
        return f"{local}@{self.domain}"

    def read_reply_address(self, address: str) -> ReplyTarget:
        """The case and party of a reply address; ``AddressError`` if forged."""
        local, domain = _split(address)
        if domain != self.domain:
            raise AddressError("not an address of this gateway")
        base, plus, token = local.partition("+")
        if base != self.reply_local or not plus:
            raise AddressError("not a valid address")
        parts = token.split(".")
        if len(parts) != 3 or parts[1] not in _CODE_PARTY:
            raise AddressError("not a valid address")
        case, code, signed = parts
        self._check(signed, f"reply:{case}:{code}")
        return ReplyTarget(_from_b36(case), _CODE_PARTY[code])

    def is_base_address(self, address: str) -> bool:
        """True for the token-less ``case@domain`` some clients reply to."""
        local, domain = _split(address)
        return domain == self.domain and local in self.fallback_locals

    # -- Message-IDs -------------------------------------------------------

    def message_id(self, case_id: int, party: Party) -> str:
        """A fresh ``<…>`` Message-ID for a mail about ``case_id`` to ``party``."""
        code = _PARTY_CODE.get(party, "s")
        case = _b36(case_id)
        nonce = secrets.token_hex(6)
        signed = self._sign(f"msgid:{case}:{code}:{nonce}")
        return f"<{case}.{code}.{nonce}.{signed}@{self.domain}>"

    def read_message_id(self, message_id: str) -> SentRef:
        local, domain = _split(message_id.strip().strip("<>"))
        if domain != self.domain:
            raise AddressError("not one of our Message-IDs")
        parts = local.split(".")
        if len(parts) != 4:
            raise AddressError("not one of our Message-IDs")
        case, code, nonce, signed = parts
        self._check(signed, f"msgid:{case}:{code}:{nonce}")
        party = _CODE_PARTY.get(code, Party.STAFF)
        return SentRef(_from_b36(case), party)

    # -- envelope senders (VERP) -------------------------------------------

    def envelope_sender(self, outbox_id: int) -> str:
        entry = _b36(outbox_id)
        signed = self._sign(f"verp:{entry}")
        return f"{self.bounce_local}+{entry}.{signed}@{self.domain}"

    def read_envelope_sender(self, address: str) -> int:
        """The outbox id a bounce is about; ``AddressError`` if forged."""
        local, domain = _split(address)
        if domain != self.domain:
            raise AddressError("not an address of this gateway")
        base, plus, token = local.partition("+")
        entry, dot, signed = token.partition(".")
        if base != self.bounce_local or not plus or not dot:
            raise AddressError("not a valid address")
        self._check(signed, f"verp:{entry}")
        return _from_b36(entry)

    def is_bounce_address(self, address: str) -> bool:
        local, domain = _split(address)
        return domain == self.domain and local.startswith(self.bounce_local + "+")

    def is_ours(self, address: str) -> bool:
        """Any address at the reply domain (our own mail coming back)."""
        return _split(address)[1] == self.domain


def is_mail_address(text: str) -> bool:
    """Whether ``text`` is one bare address, as we send mail to it."""
    return _BARE_ADDRESS.fullmatch(text) is not None


def _split(address: str) -> tuple[str, str]:
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise AddressError("not a valid address")
    return local, domain
