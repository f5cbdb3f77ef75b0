"""Bytes in, a ``ReadMail`` out: the one entry point of ``casemail.mime``.

The mail is parsed once, with the stdlib ``email`` package under
``email.policy.default`` (which records defects instead of raising), and
everything after that reads the raw header text the parser kept, through
our own forgiving code. ``read_mail`` never raises: for any bytes at all
it returns a ``ReadMail`` whose ``defects`` say what was wrong.
"""

from __future__ import annotations

import email.policy
import logging
import re
import secrets
from email.message import EmailMessage, Message
from email.parser import BytesParser

from casemail.mime import boundaries, headers, parts, quotes, text
from casemail.mime.archives import unpack_tnef
from casemail.mime.attachments import Budget, judge
from casemail.mime.defects import describe, walk_parts
from casemail.mime.model import ReadMail

log = logging.getLogger(__name__)

POLICY = email.policy.default
MAX_FORWARD_DEPTH = 5

# Runs of base64 lines at least this long are kept out of the parser
# (``parts.Elided``); in smaller mails none is looked for at all.
ELIDE_FROM = 64 * 1024
# Whole lines of the base64 alphabet (RFC 2045 6.8). Such a line can be
# no header (no colon, no leading space), no boundary (no "--") and no
# blank line, so replacing a run of them by one such line changes
# nothing the parser decides. Possessive: no backtracking state is kept
# over a run of megabytes.
_B64_RUN = re.compile(rb"^(?:[A-Za-z0-9+/=]++\r?\n)++", re.M)


def read_mail(raw: bytes, *, max_attachment_size: int = 20 * 2**20,
              max_attachments_total: int = 25 * 2**20) -> ReadMail:
    """Read one mail. Never raises; problems go into ``defects``."""
    raw = _as_bytes(raw)
    budget = Budget(max_attachment_size, max_attachments_total)
    try:
        return _read(raw, budget, depth=0)
    except Exception as exc:  # the promise: nothing escapes to the listener
        log.error("%s unreadable: %s", headers.derived_message_id(raw),
                  type(exc).__name__)
        return _unreadable(raw, f"mail could not be read "
                                f"({type(exc).__name__})")


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    try:
        return bytes(raw)  # type: ignore[call-overload]
    except Exception:
        return b""


def _read(raw: bytes, budget: Budget, depth: int) -> ReadMail:
    message, defects = _parse(raw)
    return _read_tree(message, raw, budget, depth, defects)


def _parse(raw: bytes) -> tuple[EmailMessage, list[str]]:
    """Parse once. The feed parser asks each part its Content-Type many
    times; under compat32 that is a string lookup, under the default policy
    a full header parse (14x slower on a 1 KB reply, seconds on a deeply
    nested one). Both policies split headers identically, so we parse
    under compat32 and then give the tree the default policy, whose
    header objects its readers (the classifier) expect."""
    parser = BytesParser(_class=EmailMessage, policy=email.policy.compat32)
    elided = _elide(raw)
    source = raw if elided is None else _without_runs(elided)
    try:
        message = parser.parsebytes(source)
        defects = boundaries.repair(message, email.policy.compat32)
    except RecursionError:
        # The stdlib parser recurses once per nested part: a few hundred
        # levels exhaust the stack. The headers still thread and classify
        # the mail; the body stays in the raw mail only.
        message = parser.parsebytes(source, headersonly=True)
        message.set_payload("")
        defects = ["parts nested too deep to read: the body is not read"]
    del source
    for part in walk_parts(message):
        part.policy = POLICY
        if elided is not None:
            elided.adopt(part)
    return message, defects


def _elide(raw: bytes) -> parts.Elided | None:
    """The long base64 runs of ``raw``, or None when it has none.

    The parser turns the whole mail into text, then each body into a
    list of lines and one string more: a file of 8 MB costs several
    times that before it is decoded. Its body is read from ``raw``
    instead (``parts.payload_bytes``)."""
    if len(raw) < ELIDE_FROM:
        return None
    spans = []
    for run in _B64_RUN.finditer(raw):
        start, end = run.span()
        if end - start < ELIDE_FROM:
            continue
        # The last line break stays: the one before a boundary is the
        # boundary's (RFC 2046 5.1.1), and the parser strips it.
        spans.append((start, end - (2 if raw[end - 2] == 13 else 1)))
    if not spans:
        return None
    return parts.Elided(f"casemailelided{secrets.token_hex(8)}n", raw,
                        tuple(spans))


def _without_runs(elided: parts.Elided) -> bytes:
    """The mail with each run replaced by its stand-in line."""
    pieces, at = [], 0
    view = memoryview(elided.raw)
    for number, (start, end) in enumerate(elided.spans):
        pieces += [view[at:start], f"{elided.mark}{number}".encode()]
        at = end
    pieces.append(view[at:])
    return b"".join(pieces)


def _read_tree(message: EmailMessage, raw: bytes, budget: Budget,
               depth: int, defects: list[str], *,
               id_source: bytes | None = None) -> ReadMail:
    defects = defects + _header_defects(message, raw)
    message_id = headers.message_id(message)
    if not message_id:
        message_id = headers.derived_message_id(
            raw if id_source is None else id_source)
    when, date_defect = headers.date(message)
    body = text.walk(message)
    mail = ReadMail(
        message=message, message_id=message_id,
        subject=headers.subject(message),
        sender=next(iter(headers.mailboxes(message, "from")), None),
        reply_to=headers.mailboxes(message, "reply-to"),
        to=headers.mailboxes(message, "to"),
        cc=headers.mailboxes(message, "cc"),
        date=when,
        in_reply_to=headers.message_ids(message, "in-reply-to"),
        references=headers.message_ids(message, "references"),
        new_text="", removed_text="",
        full_text=text.segment_text(body.segments), html="\n".join(body.html),
        attachments=[], defects=defects, raw=raw)
    if date_defect:
        mail.defects.append(date_defect)
    mail.defects.extend(body.defects)
    _read_files(mail, body.files, budget, depth)
    mail.new_text, mail.removed_text = _split(body, mail.full_text)
    _add_forwarded_text(mail)
    _drop_nul(mail)
    mail.defects = _dedupe(mail.defects + describe(message))
    log.debug("%s read: %d files, %d defects", message_id,
              len(mail.attachments), len(mail.defects))
    return mail


def _split(body: text.Body, full_text: str) -> tuple[str, str]:
    kinds = {kind for kind, _ in body.segments}
    if kinds == {"html"} and len(body.segments) == 1:
        return quotes.split_html_reply(body.segments[0][1], full_text)
    return quotes.split_reply(full_text)


def _header_defects(message: Message, raw: bytes) -> list[str]:
    found = []
    # isspace(), not strip(): strip() copies a mail of megabytes.
    if (not raw or raw.isspace()) and not message.keys():
        return ["empty mail"]
    if not message.keys():
        found.append("no headers: this is not a mail")
    if parts.raw_header(message, "message-id") is None:
        found.append("no Message-ID")
    if parts.raw_header(message, "from") is None:
        found.append("no From header")
    return found


def _join(segments: list[str]) -> str:
    return "\n\n".join(s.strip("\n") for s in segments if s.strip())


def _read_files(mail: ReadMail, files: list[Message], budget: Budget,
                depth: int) -> None:
    cids = _cid_references(mail.html)
    for part in files:
        ctype = parts.content_type(part)
        name = parts.filename(part)
        if ctype == "message/rfc822":
            _read_forwarded(mail, part, budget, depth)
        elif ctype == "application/ms-tnef" or name.lower() == "winmail.dat":
            _read_tnef(mail, part, budget)
        else:
            _read_one(mail, part, budget, cids)


def _cid_references(html: str) -> set[str]:
    # RFC 2392: cid: URLs name a part by its Content-ID, %-encoded.
    found = re.findall(r"cid:([^\"'\s>)]+)", html, re.I)
    return {c.lower() for c in found}


def _read_one(mail: ReadMail, part: Message, budget: Budget,
              cids: set[str]) -> None:
    data, defect = parts.payload_bytes(part)
    if defect:
        mail.defects.append(defect)
    cid = (parts.raw_header(part, "content-id") or "").strip().strip("<>")
    inline = bool(cid) and cid.lower() in cids \
        or parts.disposition(part) == "inline"
    mail.attachments.append(judge(
        data, filename=parts.filename(part),
        declared=parts.content_type(part), budget=budget,
        inline=inline, content_id=cid))


def _read_tnef(mail: ReadMail, part: Message, budget: Budget) -> None:
    data, _ = parts.payload_bytes(part)
    unpacked = unpack_tnef(data, want_body=not mail.full_text.strip())
    if unpacked.defect:
        mail.defects.append(unpacked.defect)
        mail.attachments.append(judge(
            data, filename=parts.filename(part) or "winmail.dat",
            declared=parts.content_type(part), budget=budget))
        return
    for name, payload in unpacked.files:
        item = judge(payload, filename=name, declared="", budget=budget)
        item.details["container"] = "winmail.dat"
        mail.attachments.append(item)
    # Outlook put the whole body in winmail.dat: use it when it is all.
    if unpacked.body_defect:
        mail.defects.append(unpacked.body_defect)
    if not mail.full_text.strip():
        mail.full_text = unpacked.body.strip() \
            or text.html_to_text(unpacked.html)
        mail.html = mail.html or unpacked.html


def _read_forwarded(mail: ReadMail, part: Message, budget: Budget,
                    depth: int) -> None:
    if depth >= MAX_FORWARD_DEPTH:
        mail.defects.append("forwarded mails nested too deep")
        return
    inner = _inner_message(part)
    if inner is None:
        data, _ = parts.payload_bytes(part)
        forwarded = _read(data, budget, depth + 1)
    else:
        # Its bytes live inside the outer mail's raw; writing them out
        # again costs as much as parsing, so the id (when the forwarded
        # mail has none) derives from the outer mail and the position.
        position = f"{mail.message_id}/{len(mail.forwarded)}".encode()
        forwarded = _read_tree(inner, b"", budget, depth + 1, [],
                               id_source=mail.raw + position)
    for item in forwarded.attachments:
        item.details.setdefault("forwarded", forwarded.message_id)
    mail.attachments.extend(forwarded.attachments)
    mail.forwarded.append(forwarded)


def _inner_message(part: Message) -> EmailMessage | None:
    payload = parts.payload(part)
    if isinstance(payload, list) and payload \
            and isinstance(payload[0], EmailMessage):
        return payload[0]
    return None


def _add_forwarded_text(mail: ReadMail) -> None:
    """A forwarded mail (a receipt, say) is part of what the author sent."""
    for forwarded in mail.forwarded:
        block = _forward_block(forwarded)
        mail.full_text = _join([mail.full_text, block])
        mail.new_text = _join([mail.new_text, block])


def _forward_block(forwarded: ReadMail) -> str:
    lines = ["---------- Forwarded message ----------"]
    if forwarded.sender:
        lines.append(f"From: {forwarded.sender}")
    if forwarded.date:
        lines.append(f"Date: {forwarded.date:%Y-%m-%d %H:%M %z}")
    if forwarded.subject:
        lines.append(f"Subject: {forwarded.subject}")
    return "\n".join(lines) + "\n\n" + forwarded.full_text.strip()


_TEXT_FIELDS = ("message_id", "subject", "new_text", "removed_text",
                "full_text", "html")


def _drop_nul(mail: ReadMail) -> None:
    """Remove NUL characters from everything read as text.

    RFC 5322 section 2.2 and RFC 2045 section 2.7 forbid them in mail,
    yet they arrive (raw, or from a decoded word or body); a database
    text column refuses them (PostgreSQL does), and the message would
    then be refused on every retry. The raw mail keeps them."""
    found = False
    for name in _TEXT_FIELDS:
        value = getattr(mail, name)
        if "\x00" in value:
            setattr(mail, name, value.replace("\x00", ""))
            found = True
    for box in [*mail.to, *mail.cc, *mail.reply_to,
                *([mail.sender] if mail.sender else [])]:
        if "\x00" in box.name + box.address:
            box.name = box.name.replace("\x00", "")
            box.address = box.address.replace("\x00", "")
            found = True
    for item in mail.attachments:
        if "\x00" in item.filename:
            item.filename = item.filename.replace("\x00", "")
            found = True
    mail.in_reply_to = [i.replace("\x00", "") for i in mail.in_reply_to]
    mail.references = [i.replace("\x00", "") for i in mail.references]
    if found:
        mail.defects.append("NUL characters removed from the text")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _unreadable(raw: bytes, defect: str) -> ReadMail:
    return ReadMail(
        message=EmailMessage(), message_id=headers.derived_message_id(raw),
        subject="", sender=None, reply_to=[], to=[], cc=[], date=None,
        in_reply_to=[], references=[], new_text="", removed_text="",
        full_text="", html="", attachments=[], defects=[defect], raw=raw)
