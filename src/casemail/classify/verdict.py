"""What the classifier answers: the kind of a mail and the evidence.

A ``Verdict`` is what ``casemail inspect --json`` prints and what is stored
with every message, so that any decision can be explained later: ``kind``
is the one decision, ``rules`` names every rule that fired, in the order
they ran, and ``bounce`` holds what a delivery report said.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

HUMAN = "human"
AUTO_REPLY = "auto-reply"
BOUNCE = "bounce"
FEEDBACK_REPORT = "feedback-report"
LIST = "list"
LOOP = "loop"

# When several rules fire, the strongest kind wins.  Our own mail coming
# back is the most dangerous (it can start a mail loop), then a bounce,
# which must reach the delivery status of our mail even when the report
# also looks like an auto-reply (Exim sets Auto-Submitted on its bounces).
PRECEDENCE = (LOOP, BOUNCE, FEEDBACK_REPORT, AUTO_REPLY, LIST, HUMAN)
KINDS = frozenset(PRECEDENCE)


@dataclass
class BounceReport:
    """What a delivery report says about one mail we sent.

    ``recipient`` is the address the failed mail was sent to (the DSN's
    Original-Recipient, else its Final-Recipient); ``our_envelope`` the
    envelope sender the failed mail carried, i.e. where the report went.
    """

    recipient: str | None = None
    recipients: list[str] = field(default_factory=list)
    our_envelope: str | None = None
    status: str | None = None  # RFC 3463 enhanced code, e.g. "5.1.1"
    diagnostic: str = ""  # the remote server's words, one line
    permanent: bool = True
    action: str = "failed"  # RFC 3464 2.3.3: failed, delayed, …
    original_message_id: str | None = None  # with <>
    reporting_mta: str | None = None
    source: str = ""  # which format it was read from

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Verdict:
    """The kind of one mail, every rule that fired, and any bounce."""

    kind: str = HUMAN
    rules: list[str] = field(default_factory=list)
    bounce: BounceReport | None = None

    @property
    def automated(self) -> bool:
        """True for anything a person did not write just now."""
        return self.kind != HUMAN

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "rules": list(self.rules),
            "bounce": self.bounce.as_dict() if self.bounce else None,
        }
