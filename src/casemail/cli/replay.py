"""``casemail replay``: send .eml files through the real SMTP listener.

The mail goes the way a relay would send it: over SMTP, envelope first,
so every check of the listener (RCPT, size, DATA) answers as it would in
production. Each mail ends in one of five counts, read from the reply:

    accepted  250, filed or recorded
    held      250, kept for review (a sender not on the store's team)
    refused   5xx; the relay would bounce it
    deferred  4xx; the relay would try again later
    not sent  the file gave no mail to send (no recipient, a placeholder
              without its case); the others are sent all the same

Mail files may hold placeholders for the signed parts that cannot be
written down ahead of time (reply addresses, our Message-IDs); ``fill``
replaces them through a resolver, ``CaseResolver`` for cases in our
database. The envelope recipient is ``--to``, else ``X-Original-To``
(what Postfix records of the envelope), else ``To``; the envelope sender
is ``Return-Path``, else ``From``.
"""

from __future__ import annotations

import argparse
import logging
import re
import smtplib
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import select

from casemail.addresses import Party
from casemail.errors import CasemailError
from casemail.intake import replies

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(rb"\{\{([a-z_]+)(?::([\w-]+))?(?::([a-z]+))?\}\}")

# name, label, party -> text
Resolve = Callable[[str, str, str], str]


class ReplayError(CasemailError):
    pass


NOT_SENT = "not sent"


@dataclass(frozen=True)
class Result:
    path: Path
    count: str  # accepted, held, refused, deferred, or NOT_SENT
    code: int  # 0 when not sent
    reply: str  # the server's answer, or why it was not sent
    stage: str  # MAIL, RCPT or DATA: where the answer came; "" if none
    recipient: str
    message_id: str = ""


# -- the mail files ------------------------------------------------------


def mail_files(paths: Iterable[Path | str]) -> list[Path]:
    """The .eml files named, folders walked in name order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.eml") if p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise ReplayError(f"{path}: no such file or folder")
    return found


def fill(raw: bytes, resolve: Resolve | None) -> bytes:
    """Replace every ``{{name:label:party}}`` placeholder in ``raw``."""
    def one(match: re.Match[bytes]) -> bytes:
        name, label, party = (g.decode() if g else "" for g in match.groups())
        if resolve is None:
            raise ReplayError(f"placeholder {match.group().decode()} needs "
                              f"--case LABEL=ID")
        return resolve(name, label, party).encode()
    return PLACEHOLDER.sub(one, raw)


def on_the_wire(raw: bytes) -> bytes:
    """Lines end in CRLF on the wire (RFC 5321 2.3.8), whatever the file."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def envelope_of(raw: bytes, to: str | None = None) -> tuple[str, str]:
    """The envelope sender and recipient a relay would use for ``raw``."""
    headers = _headers(raw)
    recipient = to or _first_address(headers, "X-Original-To", "To")
    if not recipient:
        raise ReplayError("no recipient: give --to or a To header")
    return_path = headers.get("Return-Path")
    if return_path is not None:
        sender = str(return_path).strip().strip("<>").strip()
    else:
        sender = _first_address(headers, "From")
    return sender, recipient


def _headers(raw: bytes) -> Any:
    return BytesHeaderParser(policy=default_policy).parsebytes(raw)


def _first_address(headers: Any, *names: str) -> str:
    for name in names:
        values = [str(v) for v in headers.get_all(name) or []]
        for _, address in getaddresses(values):
            if "@" in address:
                return address
    return ""


# -- placeholders for cases in our database ------------------------------


class CaseResolver:
    """Fills placeholders for cases named by label (``--case case1=42``)."""

    def __init__(self, runtime: object, labels: dict[str, int]) -> None:
        self.rt = runtime
        self.labels = labels

    def __call__(self, name: str, label: str, party: str) -> str:
        signer = self.rt.signer  # type: ignore[attr-defined]
        if name == "reply_domain":
            return str(signer.domain)
        if name == "base_address":
            return f"{signer.reply_local}@{signer.domain}"
        case_id = self._case(label)
        side = Party(party or "customer")
        if name == "customer_reply_address":
            return str(signer.reply_address(case_id, Party.CUSTOMER))
        if name == "merchant_reply_address":
            return str(signer.reply_address(case_id, Party.MERCHANT))
        if name == "sent_message_id":
            return self._sent(case_id, side, label).message_id
        if name == "envelope_sender":
            return self._sent(case_id, side, label).envelope_from
        raise ReplayError(f"unknown placeholder {name!r}")

    def _case(self, label: str) -> int:
        if label not in self.labels:
            raise ReplayError(f"no case for label {label!r}: give --case "
                              f"{label or 'LABEL'}=ID")
        return self.labels[label]

    def _sent(self, case_id: int, party: Party, label: str) -> object:
        from casemail.db import models as m

        with self.rt.sessions() as s:  # type: ignore[attr-defined]
            row = s.scalars(
                select(m.Outbox)
                .where(m.Outbox.case_id == case_id,
                       m.Outbox.party == party.value,
                       m.Outbox.status != "suppressed")
                .order_by(m.Outbox.id.desc())).first()
        if row is None:
            raise ReplayError(f"no mail was sent to the {party.value} of "
                              f"case {label} yet")
        return row


# -- the SMTP side -------------------------------------------------------


class Sender:
    """One SMTP connection, reused across mails, reopened when dropped."""

    def __init__(self, host: str, port: int, *, timeout: float = 60.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._smtp: smtplib.SMTP | None = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None

    def send(self, raw: bytes, mail_from: str, rcpt: str) -> tuple[str, int, str]:
        """Send one mail; the stage, code and text of the deciding answer."""
        try:
            return self._send(raw, mail_from, rcpt)
        except smtplib.SMTPServerDisconnected:
            self._smtp = None  # the server hung up between two mails
            return self._send(raw, mail_from, rcpt)

    def _send(self, raw: bytes, mail_from: str, rcpt: str) -> tuple[str, int, str]:
        smtp = self._connection()
        options = [f"SIZE={len(raw)}"] if smtp.has_extn("size") else []
        code, text = smtp.mail(mail_from, options)
        if code != 250:
            smtp.rset()
            return "MAIL", code, _text(text)
        code, text = smtp.rcpt(rcpt)
        if code not in (250, 251):
            smtp.rset()
            return "RCPT", code, _text(text)
        try:
            code, text = smtp.data(raw)
        except smtplib.SMTPDataError as exc:  # smtplib raises on non-250
            return "DATA", exc.smtp_code, _text(exc.smtp_error)
        return "DATA", code, _text(text)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = smtplib.SMTP(self.host, self.port,
                                      timeout=self.timeout)
            self._smtp.ehlo("replay.casemail.local")
        return self._smtp


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def count_of(code: int, text: str) -> str:
    if 200 <= code < 300:
        return "held" if text == replies.HELD[4:] else "accepted"
    return "deferred" if 400 <= code < 500 else "refused"


def replay(paths: Sequence[Path], host: str, port: int, *,
           to: str | None = None,
           resolve: Resolve | None = None) -> Iterator[Result]:
    """Send every file in ``paths``: one ``Result`` each, in order, as it
    is answered. A file that gives no mail is counted ``NOT_SENT`` and
    the next one is sent; a listener that cannot be reached stops the run
    (``OSError`` or ``smtplib.SMTPException``)."""
    sender = Sender(host, port)
    try:
        for path in paths:
            try:
                result = send_file(sender, path, to, resolve)
            except ReplayError as exc:
                result = Result(path, NOT_SENT, 0, str(exc), "", "")
            yield result
    finally:
        sender.close()


def send_file(sender: Sender, path: Path, to: str | None,
              resolve: Resolve | None) -> Result:
    raw = on_the_wire(fill(_read(path), resolve))
    mail_from, rcpt = envelope_of(raw, to)
    stage, code, text = sender.send(raw, mail_from, rcpt)
    log.debug("%s: %s %s %s", path.name, stage, code, text)
    message_id = str(_headers(raw).get("Message-ID") or "").strip()
    return Result(path, count_of(code, text), code, text, stage, rcpt,
                  message_id)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReplayError(f"cannot read it: {exc.strerror or exc}") from exc


def summary(results: Sequence[Result]) -> str:
    counts = Counter(r.count for r in results)
    mails = "mail" if len(results) == 1 else "mails"
    line = (f"{len(results)} {mails}: {counts['accepted']} accepted, "
            f"{counts['held']} held, {counts['refused']} refused")
    if counts["deferred"]:
        line += f", {counts['deferred']} deferred (try again later)"
    if counts[NOT_SENT]:
        line += f", {counts[NOT_SENT]} not sent"
    return line


# -- the command -----------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="send .eml files or folders through the SMTP listener",
        description="Send mail files through a running casemail listener, "
                    "as a relay would.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help=".eml file or folder (walked for *.eml)")
    p.add_argument("--to", metavar="ADDRESS",
                   help="envelope recipient for every mail (e.g. a case's "
                        "reply address); default: X-Original-To, else To")
    p.add_argument("--host", help="listener host (default: from settings)")
    p.add_argument("--port", type=int, help="listener port (default: from "
                                            "settings)")
    p.add_argument("--case", action="append", default=[], metavar="LABEL=ID",
                   help="the case a placeholder label means (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the closing count")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casemail.cli.settings import command_settings

    settings = command_settings(args)
    host = args.host or settings.listener.host
    port = args.port or settings.listener.port
    paths = mail_files(args.paths)
    labels = parse_labels(args.case)
    resolve, runtime = _resolver(settings, labels, paths)
    progress = Progress(len(paths))
    results: list[Result] = []
    try:
        for result in replay(paths, host, port, to=args.to,
                             resolve=resolve):
            results.append(result)
            if result.count == NOT_SENT:
                progress.say(f"casemail: {result.path}: not sent: "
                             f"{result.reply}")
            progress.show(len(results))
    except (OSError, smtplib.SMTPException) as exc:
        reason = f"cannot talk to {host}:{port}: {exc}"
        progress.say(f"casemail: {reason}")
        results += [Result(p, NOT_SENT, 0, reason, "", "")
                    for p in paths[len(results):]]
    finally:
        progress.end()
        if runtime is not None:
            runtime.close()
    if not args.quiet:
        for r in results:
            if r.count != NOT_SENT:  # said on stderr as it happened
                print(f"{r.path}: {r.code} {r.reply} [{r.count}]")
    print(summary(results))
    return 0 if all(r.count in ("accepted", "held", "refused")
                    for r in results) else 1


def parse_labels(items: Sequence[str]) -> dict[str, int]:
    labels = {}
    for item in items:
        label, eq, value = item.partition("=")
        if not eq or not value.strip().isdigit():
            raise ReplayError(f"--case {item!r}: expected LABEL=ID")
        labels[label.strip()] = int(value)
    return labels


def _resolver(settings: object, labels: dict[str, int],
              paths: Sequence[Path]) -> tuple[Resolve | None, object | None]:
    """A resolver only when some file needs one: it opens the database."""
    if not any(_has_placeholder(p) for p in paths):
        return None, None
    from casemail.runtime import build_runtime

    runtime = build_runtime(settings, migrate_db=False)  # type: ignore[arg-type]
    return CaseResolver(runtime, labels), runtime


def _has_placeholder(path: Path) -> bool:
    try:
        return PLACEHOLDER.search(path.read_bytes()) is not None
    except OSError:
        return False  # said when the file's turn comes


class Progress:
    """``replayed N/TOTAL`` on one stderr line for long runs, about every
    twentieth of the way; any other line on stderr ends it first, so that
    a message never lands on the end of the progress."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.step = max(1, total // 20) if total >= 20 else 0
        self.open = False  # a progress line without its end of line

    def show(self, done: int) -> None:
        if not self.step or (done % self.step and done != self.total):
            return
        print(f"\rreplayed {done}/{self.total}", end="", file=sys.stderr,
              flush=True)
        self.open = True
        if done == self.total:
            self.end()

    def say(self, line: str) -> None:
        self.end()
        print(line, file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.open:
            print(file=sys.stderr, flush=True)
            self.open = False
