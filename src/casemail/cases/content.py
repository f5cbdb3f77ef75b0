"""What a message brings to a case, whichever way it came in.

Mail, the command line and the API all hand the case service a
``Content``; the service does not care which.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from casemail.mime.attachments import Budget, judge
from casemail.mime.model import AttachmentPart, ReadMail


@dataclass
class Content:
    subject: str = ""
    new_text: str = ""
    removed_text: str = ""
    full_text: str = ""
    html: str = ""
    message_id: str = ""
    kind: str = "human"  # the classifier's verdict
    rules: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    attachments: list[AttachmentPart] = field(default_factory=list)
    raw_mail_id: int | None = None
    source: str = "email"  # email, api, cli

    @property
    def automated(self) -> bool:
        return self.kind != "human"

    @property
    def refused(self) -> list[AttachmentPart]:
        return [a for a in self.attachments if not a.kept]

    @property
    def empty(self) -> bool:
        """Nothing for the other side to read: no new text (a blank
        reply, or only quoted history or a signature, which the reader
        took off) and no file kept. A kept file alone is a message."""
        if any(a.kept for a in self.attachments):
            return False
        return all(_blank(c) for c in self.new_text)

    @classmethod
    def from_mail(cls, mail: ReadMail, *, kind: str, rules: list[str],
                  raw_mail_id: int | None) -> Content:
        return cls(
            subject=mail.subject, new_text=mail.new_text,
            removed_text=mail.removed_text, full_text=mail.full_text,
            html=mail.html, message_id=mail.message_id, kind=kind,
            rules=list(rules), defects=list(mail.defects),
            attachments=list(mail.attachments), raw_mail_id=raw_mail_id)

    @classmethod
    def typed(cls, text: str, *, source: str,
              attachments: list[AttachmentPart] | None = None) -> Content:
        """A message typed in the dashboard, the portal or the terminal."""
        return cls(new_text=text, full_text=text, source=source,
                   attachments=list(attachments or []))


def _blank(char: str) -> bool:
    # Format characters (zero-width spaces, joiners, byte order marks,
    # soft hyphens) show nothing; HTML editors leave them in empty lines.
    return char.isspace() or unicodedata.category(char) == "Cf"


def uploaded_files(files: list[tuple[str, bytes]], *, max_attachment_size: int,
                   max_attachments_total: int) -> list[AttachmentPart]:
    """Files given through the API or the command line, judged by the same
    sniffing and allowlist as the attachments of a mail."""
    budget = Budget(max_attachment_size, max_attachments_total)
    return [judge(data, filename=name, declared="", budget=budget)
            for name, data in files]
