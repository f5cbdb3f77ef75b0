"""The shape every classifier rule shares, and what rules look at.

A rule has a name (stored with the message), says in a few words what it
looks at, and decides one kind, or nothing when it only notes a signal.
Rules read an ``Inbound``: the read mail plus what the SMTP envelope said,
with the parts of the mail that several rules need worked out once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr
from functools import cached_property

from casemail.mime.defects import MAX_PARTS
from casemail.mime.model import ReadMail
from casemail.mime.parts import content_type, payload

TEXT_LIMIT = 200_000  # characters of body text the rules look at

# RFC 5321 4.5.5 and RFC 3834 2: notifications go from the mail system;
# these are the names mail systems sign them with.
_DAEMON_LOCAL = re.compile(
    r"^(mailer[-_]?daemon|mail[-_]?daemon|post[-_]?master|mdaemon"
    r"|mail[-_]?delivery[-_]?(system|subsystem)?)$", re.I)
_DAEMON_NAME = re.compile(
    r"mailer[-_ ]?daemon|post[-_ ]?master|mail deliver(y)? (sub)?system",
    re.I)
_ATTACHED = frozenset({"message/rfc822", "text/rfc822-headers",
                       "message/rfc822-headers", "message/global",
                       "message/global-headers"})


@dataclass(frozen=True)
class Rule:
    name: str
    looks_at: str
    decides: str | None  # a kind from verdict.KINDS; None only notes
    check: Callable[[Inbound], bool]


def register(rules: list[Rule], name: str, looks_at: str,
             decides: str | None) -> Callable[[Callable[[Inbound], bool]],
                                               Callable[[Inbound], bool]]:
    """Decorator: add the function below as a rule to ``rules``."""
    def wrap(check: Callable[[Inbound], bool]) -> Callable[[Inbound], bool]:
        rules.append(Rule(name, looks_at, decides, check))
        return check
    return wrap


def domain_of(address: str) -> str:
    return address.strip().strip("<>").rpartition("@")[2].lower()


def same_or_sub_domain(domain: str, own: str) -> bool:
    return bool(domain) and (domain == own or domain.endswith("." + own))


def part_text(part: Message) -> str:
    """A text part's content; a wrong charset must not stop the rules."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except Exception:  # broken charset or transfer encoding
        raw = part.get_payload(decode=True)
        content = raw.decode("latin-1") if isinstance(raw, bytes) else ""
    if isinstance(content, bytes):
        content = content.decode("latin-1")
    return content if isinstance(content, str) else ""


class Inbound:
    """One mail as the rules see it."""

    def __init__(self, mail: ReadMail, *, envelope_from: str | None,
                 own_domain: str | None) -> None:
        self.mail = mail
        self.message: EmailMessage = mail.message
        self.envelope_from = envelope_from
        self.own_domain = own_domain.lower() if own_domain else None

    def header(self, name: str) -> str:
        return self.mail.header(name).strip()

    def header_lower(self, name: str) -> str:
        return self.header(name).lower()

    @cached_property
    def from_header(self) -> str:
        return self.header("From")

    @cached_property
    def from_address(self) -> str:
        if self.mail.sender is not None:
            return self.mail.sender.address.strip().lower()
        return parseaddr(self.from_header)[1].lower()

    @cached_property
    def subject(self) -> str:
        return " ".join((self.mail.subject or self.header("Subject")).split())

    @cached_property
    def daemon_sender(self) -> bool:
        """From: names the mail system (MAILER-DAEMON, postmaster…)."""
        for name, address in getaddresses([self.from_header]):
            local = address.rpartition("@")[0] if "@" in address else address
            if _DAEMON_LOCAL.match(local.strip()):
                return True
            if name and _DAEMON_NAME.search(name):
                return True
        return bool(_DAEMON_NAME.fullmatch(self.from_header.strip("<> ")))

    @cached_property
    def null_return_path(self) -> bool:
        """Return-Path: <> written by the delivering server (RFC 5321 4.4)."""
        paths = self.message.get_all("Return-Path") or []
        return any(str(p).strip() in ("<>", "<<>>") for p in paths)

    @cached_property
    def null_reverse_path(self) -> bool:
        return self.envelope_from == "" or self.null_return_path

    @cached_property
    def from_mail_system(self) -> bool:
        """Sent by a mail system rather than a mailbox: the gate for the
        body and subject patterns, so that a person who forwards us a
        bounce is not taken for one."""
        return self.daemon_sender or self.null_reverse_path

    @cached_property
    def _typed_parts(self) -> list[tuple[Message, str]]:
        """Every part of this mail with its type, not descending into
        attached mail; at most ``MAX_PARTS``, as the reader reads.

        The type comes from the raw header: the policy's header objects
        cost a full parse on every call, and rules ask many times."""
        found: list[tuple[Message, str]] = []
        stack: list[Message] = [self.message]
        while stack and len(found) < MAX_PARTS:
            part = stack.pop()
            ctype = content_type(part)
            found.append((part, ctype))
            children = payload(part)
            if ctype.startswith("multipart/") and isinstance(children, list):
                stack.extend(reversed(children))  # keep document order
        return found

    @cached_property
    def content_type(self) -> str:
        """The top part's type, from the raw header (see ``_typed_parts``)."""
        return self._typed_parts[0][1]

    @cached_property
    def own_parts(self) -> list[Message]:
        """Every part of this mail, not descending into attached mail."""
        return [part for part, _ in self._typed_parts]

    def parts_of_type(self, *types: str) -> list[Message]:
        return [part for part, ctype in self._typed_parts if ctype in types]

    @cached_property
    def text(self) -> str:
        """The plain text this mail itself says (not an attached mail's)."""
        parts = self.parts_of_type("text/plain") or self.parts_of_type(
            "text/html")
        joined = "\n".join(part_text(p) for p in parts
                           if p is self.message or not _is_attachment(p))
        if not joined.strip():
            joined = "\n".join(self._unparsed_bodies())
        return joined[:TEXT_LIMIT]

    def _unparsed_bodies(self) -> list[str]:
        # A multipart whose boundary the parser lost (a header folded
        # without the leading space) keeps its body as one string; the
        # words are still there to read.
        return [body for part, ctype in self._typed_parts
                if ctype.startswith("multipart/")
                and isinstance(body := payload(part), str)]

    @cached_property
    def attached_parts(self) -> list[Message]:
        """Returned mail or its headers (RFC 3462 / RFC 6522 part three)."""
        return self.parts_of_type(*_ATTACHED)


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).lower()
    return disposition.startswith("attachment")
