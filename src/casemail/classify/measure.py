"""Measure the classifier on the shared corpus of real bounces.

    python -m casemail.classify.measure [CORPUS]

CORPUS defaults to /work/shared/corpus/sisimai-set-of-emails.  Every mail
in ``bsd/`` is a bounce, an abuse report (``arf-*``) or an auto-reply
(``rfc3834-*``), none written by a person; nothing in ``not/`` is a
bounce.  Prints the rates and, with ``-v``, every miss.
"""

from __future__ import annotations

import argparse
import email
import sys
from collections import Counter
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from casemail.classify import (
    AUTO_REPLY,
    BOUNCE,
    FEEDBACK_REPORT,
    HUMAN,
    classify,
)
from casemail.mime.model import Mailbox, ReadMail

DEFAULT = Path("/work/shared/corpus/sisimai-set-of-emails")


def expected_kind(name: str) -> str:
    if name.startswith("arf-"):
        return FEEDBACK_REPORT
    if name.startswith("rfc3834-"):
        return AUTO_REPLY
    return BOUNCE


def load(raw: bytes) -> ReadMail:
    try:
        from casemail.mime.reader import read_mail
    except ImportError:
        return _bare_read(raw)
    return read_mail(raw)


def _bare_read(raw: bytes) -> ReadMail:
    # XXX: stands in for mime.reader.read_mail until that lands; the
    # classifier only needs the tree, the subject and the sender.
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    senders = getaddresses([str(message.get("From", ""))])
    sender = Mailbox(*senders[0]) if senders and senders[0][1] else None
    return ReadMail(
        message=message, message_id=str(message.get("Message-ID", "")),
        subject=str(message.get("Subject", "")), sender=sender,
        reply_to=[], to=[], cc=[], date=None, in_reply_to=[], references=[],
        new_text="", removed_text="", full_text="", html="", attachments=[],
        defects=[])


def measure(corpus: Path, verbose: bool) -> int:
    kinds: Counter[str] = Counter()
    bsd = sorted((corpus / "bsd").glob("*.eml"))
    right = nonhuman = with_status = with_recipient = with_msgid = 0
    bounces = 0
    for path in bsd:
        verdict = classify(load(path.read_bytes()))
        kinds[verdict.kind] += 1
        nonhuman += verdict.kind != HUMAN
        ok = verdict.kind == expected_kind(path.name)
        right += ok
        if verdict.bounce is not None:
            bounces += 1
            with_status += verdict.bounce.status is not None
            with_recipient += verdict.bounce.recipient is not None
            with_msgid += verdict.bounce.original_message_id is not None
        if verbose and not ok:
            print(f"miss {path.name}: {verdict.kind} {verdict.rules}")
    notdir = sorted((corpus / "not").glob("*.eml"))
    false_bounces = 0
    for path in notdir:
        verdict = classify(load(path.read_bytes()))
        false_bounces += verdict.kind == BOUNCE
        if verbose:
            print(f"not/{path.name}: {verdict.kind} {verdict.rules}")
    total = len(bsd)
    print(f"bsd/: {total} mails")
    print(f"  not human:        {_rate(nonhuman, total)}")
    print(f"  right kind:       {_rate(right, total)}")
    print(f"  kinds:            {dict(sorted(kinds.items()))}")
    print(f"  bounces with status code:        {_rate(with_status, bounces)}")
    print(f"  bounces with original recipient: "
          f"{_rate(with_recipient, bounces)}")
    print(f"  bounces with original Message-ID: {_rate(with_msgid, bounces)}")
    print(f"not/: {len(notdir)} mails, {false_bounces} taken for bounces")
    return 0


def _rate(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    return f"{part}/{whole} ({share:.1f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m casemail.classify.measure")
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    return measure(args.corpus, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
