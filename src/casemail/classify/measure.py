"""Measure the classifier on the shared corpus of real bounces.

    python -m casemail.classify.measure [CORPUS]

CORPUS defaults to ``sisimai-set-of-emails`` in the shared corpus, found
as ``casemail.mime.measure`` finds it (``../shared/corpus`` beside the
repository, or ``$CASEMAIL_CORPUS``).  Every mail
in ``bsd/`` is a bounce, an abuse report (``arf-*``) or an auto-reply
(``rfc3834-*``), none written by a person; nothing in ``not/`` is a
bounce.  Prints the rates and, with ``-v``, every miss.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from casemail.classify import (
    AUTO_REPLY,
    BOUNCE,
    FEEDBACK_REPORT,
    HUMAN,
    classify,
)
from casemail.mime.measure import default_corpus
from casemail.mime.model import ReadMail
from casemail.mime.reader import read_mail


def bounce_corpus() -> Path:
    return default_corpus() / "sisimai-set-of-emails"


def expected_kind(name: str) -> str:
    if name.startswith("arf-"):
        return FEEDBACK_REPORT
    if name.startswith("rfc3834-"):
        return AUTO_REPLY
    return BOUNCE


def load(raw: bytes) -> ReadMail:
    return read_mail(raw)


@dataclass
class Measurement:
    """Counts over one run; ``misses`` names each file of the wrong kind."""

    total: int = 0
    not_human: int = 0
    right_kind: int = 0
    bounces: int = 0
    with_status: int = 0
    with_recipient: int = 0
    with_message_id: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)
    not_bounces: int = 0
    false_bounces: list[str] = field(default_factory=list)


def measure(corpus: Path) -> Measurement:
    result = Measurement()
    for path in sorted((corpus / "bsd").glob("*.eml")):
        _count_report(result, path)
    for path in sorted((corpus / "not").glob("*.eml")):
        result.not_bounces += 1
        verdict = classify(load(path.read_bytes()))
        if verdict.kind == BOUNCE:
            result.false_bounces.append(f"{path.name}: {verdict.rules}")
    return result


def _count_report(result: Measurement, path: Path) -> None:
    verdict = classify(load(path.read_bytes()))
    result.total += 1
    result.kinds[verdict.kind] += 1
    result.not_human += verdict.kind != HUMAN
    if verdict.kind == expected_kind(path.name):
        result.right_kind += 1
    else:
        result.misses.append(f"{path.name}: {verdict.kind} {verdict.rules}")
    bounce = verdict.bounce
    if bounce is None:
        return
    result.bounces += 1
    result.with_status += bounce.status is not None
    result.with_recipient += bounce.recipient is not None
    result.with_message_id += bounce.original_message_id is not None


def report(result: Measurement, verbose: bool) -> None:
    if verbose:
        for line in (*result.misses, *result.false_bounces):
            print("miss", line)
    bounces = result.bounces
    print(f"bsd/: {result.total} mails")
    print(f"  not human:        {_rate(result.not_human, result.total)}")
    print(f"  right kind:       {_rate(result.right_kind, result.total)}")
    print(f"  kinds:            {dict(sorted(result.kinds.items()))}")
    print(f"  bounces with status code:         "
          f"{_rate(result.with_status, bounces)}")
    print(f"  bounces with original recipient:  "
          f"{_rate(result.with_recipient, bounces)}")
    print(f"  bounces with original Message-ID: "
          f"{_rate(result.with_message_id, bounces)}")
    print(f"not/: {result.not_bounces} mails, "
          f"{len(result.false_bounces)} taken for bounces")


def _rate(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    return f"{part}/{whole} ({share:.1f}%)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m casemail.classify.measure")
    parser.add_argument("corpus", nargs="?", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    report(measure(args.corpus or bounce_corpus()), args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
