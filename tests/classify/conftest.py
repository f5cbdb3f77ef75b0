"""Helpers for the classifier tests: our own fixture mails, read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from casemail.classify import Verdict, classify
from casemail.classify.measure import load

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "classify"
OWN_DOMAIN = "reply.example.test"


def raw_fixture(name: str, *, extra_headers: str = "",
                subject: str | None = None) -> bytes:
    """A fixture's bytes, with headers put in front or the subject set."""
    raw = (FIXTURES / name).read_bytes()
    if subject is not None:
        lines = raw.split(b"\n")
        lines = [b"Subject: " + subject.encode() if line.startswith(
            b"Subject:") else line for line in lines]
        raw = b"\n".join(lines)
    return extra_headers.encode() + raw


def _verdict_of(name: str, *, envelope_from: str | None = None,
                own_domain: str | None = OWN_DOMAIN,
                **changes: str) -> Verdict:
    raw = raw_fixture(name, **changes)
    return classify(load(raw), envelope_from=envelope_from,
                    own_domain=own_domain)


@pytest.fixture
def verdict_of() -> Callable[..., Verdict]:
    """Classify a fixture: ``verdict_of(name, extra_headers=…)``."""
    return _verdict_of
