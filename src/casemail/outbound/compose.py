"""Templates → one complete message with our threading and manners headers.

Every mail we send is rendered from jinja2 templates: ``<name>.subject.txt``
(or a ``subject`` block in the text template), ``<name>.txt`` and
``<name>.html``, all from the same context, so the two parts can never
tell different stories. A store may override any template, layout or
partial by placing a file of the same name under
``<templates dir>/stores/<store slug>/``; a broken override falls back to
the bundled template rather than holding up the change that sent the mail.

The headers are where we behave as a good sender: a signed Message-ID,
In-Reply-To/References and Outlook's Thread-Topic/Thread-Index so the case
stays one thread in every client, Auto-Submitted (RFC 3834 5) and
X-Auto-Response-Suppress so other robots stay quiet, and X-Casemail-Case so
our own mail coming back is recognised.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

import jinja2

import casemail
from casemail.addresses import Signer
from casemail.classify.loop import MARKER_HEADER
from casemail.clock import Clock, SystemClock, utc
from casemail.config import Settings
from casemail.outbound import wire

log = logging.getLogger(__name__)

# References keeps the first id (the root of the thread) and the newest
# ones: enough for every client to find the thread, short enough that the
# header does not grow with every mail of a long case (RFC 5322 3.6.4
# allows trimming; clients only need an id they know).
REFERENCES_KEEP_LAST = 10

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Composed:
    data: bytes  # the whole message, ready for the relay
    subject: str  # as rendered, before any encoding for the header


def bundled_templates() -> Path:
    return Path(casemail.__file__).resolve().parents[2] / "templates"


def bounded_references(chain: Sequence[str]) -> list[str]:
    """The first id and the last few, without repeats, in order."""
    ids = list(dict.fromkeys(i for i in chain if i))
    if len(ids) <= REFERENCES_KEEP_LAST + 1:
        return ids
    return [ids[0], *ids[-REFERENCES_KEEP_LAST:]]


def thread_index(domain: str, case_id: int, opened: dt.datetime) -> str:
    """Outlook's Thread-Index root for a case, the same for every mail.

    The 22-byte header block is six bytes of the FILETIME the thread began
    and a 16-byte GUID; we derive both from the case so every mail of it
    carries the same root. We add no 5-byte child blocks: Outlook groups
    on the root and orders by Date.
    """
    ticks = int((utc(opened) - _FILETIME_EPOCH).total_seconds() * 10**7)
    guid = hashlib.sha256(f"casemail:{domain}:{case_id}".encode()).digest()
    raw = struct.pack(">Q", ticks)[:6] + guid[:16]
    return base64.b64encode(raw).decode()


def _mailbox(name: str, address: str) -> str:
    # formataddr quotes specials and encodes non-ASCII names (RFC 2047).
    return formataddr((_one_line(name), address), charset="utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return utc(value).strftime("%A %d %B %Y, %H:%M UTC")


class Composer:
    """Renders templates and builds the bytes the delivery worker sends."""

    def __init__(self, settings: Settings, signer: Signer,
                 templates_dir: Path | None = None, *,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.signer = signer
        self.clock = clock or SystemClock()
        dirs = [templates_dir, settings.templates_dir, bundled_templates()]
        self.dirs = list(dict.fromkeys(d for d in dirs if d is not None))
        self._base = self._environment(self.dirs)
        self._by_store: dict[str, jinja2.Environment] = {}

    # -- rendering -----------------------------------------------------------

    def render(self, template: str, context: dict[str, Any]
               ) -> tuple[str, str, str]:
        """(subject, text, html) of ``template`` for ``context``."""
        context = {"platform_name": self.settings.platform_name, **context}
        env = self._store_env(context.get("store"))
        if env is self._base:
            return self._render_with(self._base, template, context)
        try:
            return self._render_with(env, template, context)
        except jinja2.TemplateError as exc:
            # A store's own template must not stop the case change that
            # queued the mail; the bundled one still says what happened.
            log.warning("store %s: template %s failed (%s); using the "
                        "bundled one", context["store"].slug, template, exc)
            return self._render_with(self._base, template, context)

    def _render_with(self, env: jinja2.Environment, name: str,
                     context: dict[str, Any]) -> tuple[str, str, str]:
        text_tpl = env.get_template(f"{name}.txt")
        html = env.get_template(f"{name}.html").render(context)
        text = text_tpl.render(context)
        try:
            subject = env.get_template(f"{name}.subject.txt").render(context)
        except jinja2.TemplateNotFound:
            subject = self._subject_block(text_tpl, name, context)
        return _one_line(subject), text, html

    @staticmethod
    def _subject_block(tpl: jinja2.Template, name: str,
                       context: dict[str, Any]) -> str:
        block = tpl.blocks.get("subject")
        if block is None:
            raise jinja2.TemplateNotFound(f"{name}.subject.txt")
        return "".join(block(tpl.new_context(context)))

    def _store_env(self, store: Any) -> jinja2.Environment:
        slug = getattr(store, "slug", None) or ""
        if not _SLUG.match(slug):
            return self._base
        env = self._by_store.get(slug)
        if env is None:
            overrides = [d / "stores" / slug for d in self.dirs]
            if not any(d.is_dir() for d in overrides):
                env = self._base
            else:
                env = self._environment([*overrides, *self.dirs])
            self._by_store[slug] = env
        return env

    @staticmethod
    def _environment(dirs: Sequence[Path]) -> jinja2.Environment:
        loader = jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(str(d)) for d in dirs])
        env = jinja2.Environment(
            loader=loader,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False,
                default=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
            # Read once, like the store folders above: looking at every
            # template file's time again for each notification cost a
            # few system calls inside the write lock, each a chance for
            # the writer to lose the interpreter to another thread. A
            # changed template takes effect when the gateway restarts.
            auto_reload=False)
        env.filters["when"] = _when
        return env

    # -- the message ---------------------------------------------------------

    def compose(self, *, envelope_from: str, **message: Any) -> bytes:
        """The full RFC 5322 message, CRLF line ends.

        ``envelope_from`` is not written into the message: Return-Path is
        added by the final delivery (RFC 5321 4.4); it is accepted so that
        callers hand over the whole envelope in one place.
        """
        del envelope_from
        return self.compose_with_subject(**message).data

    def compose_with_subject(
            self, *, template: str, context: dict[str, Any], to: str,
            to_name: str, from_addr: str, from_name: str, reply_to: str,
            message_id: str, in_reply_to: str | None,
            references: Sequence[str], auto_submitted: str = "auto-generated",
            thread_topic: str = "",
            attachments: Sequence[tuple[str, str, bytes]] = (),
            date: dt.datetime | None = None) -> Composed:
        """The message and its subject as rendered, so nobody has to
        parse the message again to show what it is about."""
        subject, text, html = self.render(template, context)
        headers = [
            ("From", _mailbox(from_name, from_addr)),
            ("To", _mailbox(to_name, to)),
            ("Reply-To", reply_to),
            ("Subject", subject),
            ("Date", format_datetime(utc(date or self.clock.now()))),
            ("Message-ID", message_id),
            *self._threading(in_reply_to, references),
            *self._manners(auto_submitted),
            *self._outlook(context.get("case"), thread_topic, subject),
        ]
        return Composed(wire.message(headers, text, html, attachments),
                        subject)

    @staticmethod
    def _threading(in_reply_to: str | None,
                   references: Sequence[str]) -> list[tuple[str, str]]:
        # RFC 5322 3.6.4: the parent in In-Reply-To, the chain in References.
        # An empty value is left out.
        return [("In-Reply-To", in_reply_to or ""),
                ("References", " ".join(bounded_references(references)))]

    def _manners(self, auto_submitted: str) -> list[tuple[str, str]]:
        # RFC 3834 5: "auto-generated" for notifications and warnings,
        # "auto-replied" for the store's auto-reply; a person's message
        # relayed by us carries none (the field's absence means "no").
        return [("Auto-Submitted", auto_submitted),
                # Exchange and Outlook honour this instead of RFC 3834.
                ("X-Auto-Response-Suppress", "All"),
                # Our own mail coming back is recognised by this
                # (classify/loop).
                (MARKER_HEADER, self.signer.domain)]

    def _outlook(self, case: Any, topic: str,
                 subject: str) -> list[tuple[str, str]]:
        if case is None:
            return []
        return [("X-Casemail-Case", str(case.id)),
                ("Thread-Topic", _one_line(topic or case.subject or subject)),
                ("Thread-Index", thread_index(self.signer.domain, case.id,
                                              case.created_at))]
