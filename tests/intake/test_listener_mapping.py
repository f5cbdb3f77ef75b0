"""The one mapping from errors to replies, checked for completeness: no
exception and no reply aiosmtpd words itself reaches the wire without an
enhanced status code, and nothing unexpected is ever permanent."""

from __future__ import annotations

import re
from pathlib import Path

import aiosmtpd
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, TimeoutError

from casemail import errors
from casemail.intake import replies

ENHANCED = re.compile(r"^([245])\d\d \1\.\d{1,3}\.\d{1,3} [A-Z]")
SIZES = {"message": 30_000, "line": 1000}


def every_error_class() -> list[type[errors.CasemailError]]:
    found, todo = [], [errors.CasemailError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def instance(cls: type[Exception]) -> Exception:
    if issubclass(cls, errors.DeliveryError):
        return cls("relay said no", permanent=True)
    return cls("something went wrong")


@pytest.mark.parametrize("cls", every_error_class(),
                         ids=lambda cls: cls.__name__)
def test_every_casemail_error_has_a_worded_reply(
        cls: type[errors.CasemailError]) -> None:
    answer = replies.for_error(instance(cls), where="DATA")
    assert ENHANCED.match(answer), answer
    permanent = (errors.MailRefused, errors.AddressError, errors.UnknownCase)
    assert answer.startswith("5") == issubclass(cls, permanent), answer


@pytest.mark.parametrize("error", [
    OperationalError("INSERT", {}, Exception("database is locked")),
    IntegrityError("INSERT", {}, Exception("duplicate key")),
    TimeoutError("QueuePool limit reached"),
    OSError(28, "No space left on device"),
    MemoryError(),
    KeyError("content-type"),
    RuntimeError("anything at all"),
], ids=lambda e: type(e).__name__)
def test_anything_else_is_temporary_and_names_nothing_inside(
        error: Exception) -> None:
    answer = replies.for_error(error, where="DATA")
    assert answer == replies.TRY_LATER
    assert type(error).__name__ not in answer


def aiosmtpd_error_texts() -> list[str]:
    """Every error reply literal in aiosmtpd's SMTP and LMTP classes."""
    folder = Path(aiosmtpd.__file__).parent
    source = (folder / "smtp.py").read_text() + (folder / "lmtp.py").read_text()
    texts = re.findall(r"""['"]([45]\d\d [^'"]*)['"]""",
                       source.replace("{command}", "MAIL"))
    assert len(texts) > 25, "aiosmtpd changed shape; read it again"
    return sorted(set(texts))


@pytest.mark.parametrize("theirs", aiosmtpd_error_texts())
def test_every_error_aiosmtpd_words_itself_is_translated(theirs: str) -> None:
    ours = replies.translate(theirs, sizes=SIZES)
    assert ENHANCED.match(ours), ours
    assert "Error:" not in ours
    assert not ours.startswith("500 Error: (")


def test_the_last_resort_of_aiosmtpd_becomes_a_retry() -> None:
    leak = "500 Error: (ProgrammingError) relation raw_mails does not exist"
    assert replies.translate(leak, sizes=SIZES) == replies.TRY_LATER


def test_replies_that_already_carry_a_code_pass_unchanged() -> None:
    for ours in (replies.ACCEPTED, replies.NO_SUCH_CASE, replies.TRY_LATER,
                 "250-SIZE 30000", "220 casemail.local casemail"):
        assert replies.translate(ours, sizes=SIZES) == ours


def aiosmtpd_positive_texts() -> list[str]:
    """aiosmtpd's positive reply literals, but the greeting (``220 {}``),
    the answers to EHLO and HELO and the intermediate 334 and 354, which
    carry no enhanced code (RFC 2034 3, RFC 3463 2)."""
    folder = Path(aiosmtpd.__file__).parent
    source = (folder / "smtp.py").read_text() + (folder / "lmtp.py").read_text()
    texts = re.findall(r"""['"](2\d\d [^'"]*)['"]""", source)
    bare = {"220 {} {}", "250 {}", "250 HELP"}
    found = sorted(set(texts) - bare)
    assert len(found) >= 5, "aiosmtpd changed shape; read it again"
    return found + ["250 Supported commands: DATA EHLO"]


@pytest.mark.parametrize("theirs", aiosmtpd_positive_texts())
def test_every_positive_reply_aiosmtpd_words_gets_a_code(theirs: str) -> None:
    ours = replies.translate(theirs, sizes=SIZES)
    assert re.match(r"^(2)\d\d \1\.\d{1,3}\.\d{1,3} \S", ours), ours
