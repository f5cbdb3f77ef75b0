"""What reading a mail gives: plain data, no database, no cases.

``mime.reader.read_mail(raw)`` returns a ``ReadMail``; the classifier, the
threading step and ``casemail inspect`` all work from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class Mailbox:
    name: str
    address: str  # as written; compare in lower case

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


@dataclass
class AttachmentPart:
    """One file found in a mail, and whether we keep it."""

    filename: str  # as the sender named it, decoded for display
    safe_name: str  # for anything that touches a file system
    declared_type: str  # the Content-Type the sender claimed
    content_type: str  # what libmagic says the bytes are
    size: int
    sha256: str
    kept: bool
    reason: str  # why refused; or a note (e.g. type mismatch) when kept
    data: bytes = field(repr=False, default=b"")
    inline: bool = False
    content_id: str = ""
    details: dict[str, object] = field(default_factory=dict)  # zip entries…


@dataclass
class ReadMail:
    """Everything we read from one mail's bytes."""

    message: EmailMessage = field(repr=False)  # the parsed tree, for rules
    message_id: str  # with <>; derived from the content when missing
    subject: str
    sender: Mailbox | None  # From:
    reply_to: list[Mailbox]
    to: list[Mailbox]
    cc: list[Mailbox]
    date: dt.datetime | None
    in_reply_to: list[str]  # Message-IDs, with <>
    references: list[str]
    new_text: str  # what the author wrote this time
    removed_text: str  # quoted history and signature we took off
    full_text: str  # the whole body as text
    html: str  # the HTML body, if any
    attachments: list[AttachmentPart]
    defects: list[str]  # what was wrong, in words
    # Exactly as received; empty for a forwarded mail (its bytes are in
    # the outer mail's raw).
    raw: bytes = field(repr=False, default=b"")
    # Mails attached whole (message/rfc822), read the same way; their
    # files are also in ``attachments``, marked details["forwarded"].
    forwarded: list[ReadMail] = field(default_factory=list)
    _headers: dict[str, str] = field(default_factory=dict, repr=False,
                                     compare=False)
    _raw: dict[str, str] = field(default_factory=dict, repr=False,
                                 compare=False)

    def header(self, name: str) -> str:
        """One header's decoded value, ``""`` when absent or unreadable.

        Decoded once per name: under the default policy every lookup
        parses the header anew, and the classifier's rules ask for the
        same few headers dozens of times a mail."""
        key = name.lower()
        cached = self._headers.get(key)
        if cached is None:
            cached = self._headers[key] = self._decoded(key)
        return cached

    def _decoded(self, key: str) -> str:
        if not self._raw:  # the first field of each name, as sent
            for k, v in self.message.raw_items():
                self._raw.setdefault(k.lower(), str(v))
        raw = self._raw.get(key)
        if raw is None:
            return ""
        if raw.isascii() and "=?" not in raw:
            # Plain ASCII, as most headers are, reads the same unfolded
            # as the policy would give it, without its full parse
            # (addresses keep the sender's own quoting).
            return raw.replace("\r", "").replace("\n", "")
        try:
            value = self.message.get(key)
        except Exception:  # a header so broken the policy cannot fold it
            return ""
        return "" if value is None else str(value)
