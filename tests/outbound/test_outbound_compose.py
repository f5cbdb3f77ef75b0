"""Composer: templates render text and HTML from one context, and every
message carries our threading and manners headers, correctly encoded."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from casemail.addresses import Party, Signer
from casemail.config import Settings
from casemail.db import models as m
from casemail.outbound.compose import (
    REFERENCES_KEEP_LAST,
    Composer,
    bounded_references,
)

TEMPLATES = ["new_case", "customer_reply", "merchant_reply", "staff_message",
             "case_closed", "case_reopened", "auto_reply", "close_warning",
             "attachment_refused"]
OPENED = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)


def _store(slug: str = "pixel-forge") -> m.Store:
    return m.Store(id=3, slug=slug, name="Pixel Forge Ltd",
                   sender_address="help@pixelforge.example",
                   auto_reply_text="Thanks! We answer within one day.")


def _case(case_id: int = 41, subject: str = "Lizenzschlüssel fehlt") -> m.Case:
    return m.Case(id=case_id, store_id=3, order_ref="PF-10042",
                  customer_address="zoe.mertens@customer.example",
                  customer_name="Zoë Mertens", subject=subject,
                  state="awaiting_merchant", priority="high",
                  created_at=OPENED, last_activity_at=OPENED)


def _message(text: str = "The key <b>never</b> came & I paid.") -> m.Message:
    msg = m.Message(id=7, case_id=41, party="customer", new_text=text,
                    author_name="Zoë Mertens",
                    author_address="zoe.mertens@customer.example")
    msg.attachments = [
        m.Attachment(filename="receipt.pdf", content_type="application/pdf",
                     kept=True, inline=False),
        m.Attachment(filename="tool.exe", content_type="application/x-dosexec",
                     kept=False, inline=False, reason="type not allowed"),
    ]
    return msg


def _context(**extra: object) -> dict[str, object]:
    return {"case": _case(), "store": _store(), "message": _message(),
            "close_at": dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC),
            "refused": [{"filename": "tool.exe",
                         "content_type": "application/x-dosexec",
                         "reason": "type not allowed"}], **extra}


def _compose(composer: Composer, signer: Signer, *, template: str = "new_case",
             context: dict[str, object] | None = None,
             **kw: object) -> EmailMessage:
    args: dict[str, object] = dict(
        template=template, context=context or _context(),
        to="zoe.mertens@customer.example", to_name="Zoë Mertens",
        from_addr="notifications@reply.example.test",
        from_name="Pixel Forge Ltd",
        reply_to=signer.reply_address(41, Party.CUSTOMER),
        message_id=signer.message_id(41, Party.CUSTOMER),
        in_reply_to=None, references=[], envelope_from="bounce@x.test")
    args.update(kw)
    raw = composer.compose(**args)  # type: ignore[arg-type]
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF in output"
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    raw.decode("ascii")  # 7-bit clean: any relay takes it
    return email.message_from_bytes(raw, policy=email.policy.default)


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_subject_text_and_html_from_one_context(
        composer: Composer, template: str) -> None:
    subject, text, html = composer.render(template, _context())
    assert subject == "[Pixel Forge Ltd] Case #41: Lizenzschlüssel fehlt"
    assert "\n" not in subject
    assert "PF-10042" in text and "PF-10042" in html
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "{{" not in text + html and "{%" not in text + html


def test_html_is_escaped_and_text_is_not(composer: Composer) -> None:
    _, text, html = composer.render("customer_reply", _context())
    assert "The key <b>never</b> came & I paid." in text
    assert "The key &lt;b&gt;never&lt;/b&gt; came &amp; I paid." in html
    assert "receipt.pdf" in text and "tool.exe" not in text


def test_staff_message_is_branded_as_platform_support(
        composer: Composer) -> None:
    for party in ("customer", "merchant"):
        _, text, html = composer.render(
            "staff_message", _context(recipient_party=party))
        assert "SHOPFRONT PLATFORM SUPPORT TEAM" in text
        assert "Shopfront Platform Support Team" in html
    assert "with your customer" in " ".join(text.split())


def test_close_warning_names_the_date_and_that_a_reply_keeps_it_open(
        composer: Composer) -> None:
    _, text, _ = composer.render("close_warning", _context())
    assert "Friday 20 March 2026, 09:00 UTC" in text
    assert "Reply to this email before then and the case stays" in text


def test_attachment_refused_lists_each_file_and_why(
        composer: Composer) -> None:
    refused = [{"filename": "a.exe", "content_type": "application/x-dosexec",
                "reason": "type not allowed"},
               {"filename": "b.js", "content_type": "text/javascript",
                "reason": "scripts are not accepted"}]
    _, text, html = composer.render("attachment_refused",
                                    _context(refused=refused))
    assert "a.exe (application/x-dosexec): type not allowed" in text
    assert "b.js (text/javascript): scripts are not accepted" in text
    assert "these files" in text and "b.js" in html


def test_case_closed_tells_the_customer_to_reply_to_reopen(
        composer: Composer) -> None:
    _, text, _ = composer.render("case_closed", _context())
    assert "reply to this email and the case reopens" in text


def test_headers_of_a_notification(composer: Composer,
                                   signer: Signer) -> None:
    parent = signer.message_id(41, Party.MERCHANT)
    msg = _compose(composer, signer, in_reply_to=parent,
                   references=["<root@x.test>", parent])
    assert msg["From"].addresses[0].display_name == "Pixel Forge Ltd"
    assert msg["To"].addresses[0].display_name == "Zoë Mertens"
    assert msg["Subject"] == "[Pixel Forge Ltd] Case #41: Lizenzschlüssel fehlt"
    assert signer.read_message_id(msg["Message-ID"]).case_id == 41
    assert msg["In-Reply-To"] == parent
    assert msg["References"].split() == ["<root@x.test>", parent]
    assert signer.read_reply_address(
        msg["Reply-To"].addresses[0].addr_spec).party is Party.CUSTOMER
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Casemail-Case"] == "41"
    assert msg["Thread-Topic"] == "Lizenzschlüssel fehlt"
    assert msg["Date"].datetime == dt.datetime(2026, 3, 2, 10, 0,
                                               tzinfo=dt.UTC)
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert "The key <b>never</b>" in plain.get_content()


def test_auto_reply_says_auto_replied_and_a_relayed_reply_says_nothing(
        composer: Composer, signer: Signer) -> None:
    auto = _compose(composer, signer, template="auto_reply",
                    auto_submitted="auto-replied")
    assert auto["Auto-Submitted"] == "auto-replied"
    human = _compose(composer, signer, template="merchant_reply",
                     auto_submitted="")
    assert human["Auto-Submitted"] is None
    assert human["X-Auto-Response-Suppress"] == "All"


def test_thread_index_is_stable_per_case_and_differs_between_cases(
        composer: Composer, signer: Signer) -> None:
    first = _compose(composer, signer)["Thread-Index"]
    second = _compose(composer, signer, template="close_warning")["Thread-Index"]
    other = _compose(composer, signer,
                     context=_context(case=_case(42)))["Thread-Index"]
    assert first == second != other
    assert len(base64.b64decode(first)) == 22
    assert base64.b64decode(first)[0] == 0x01  # FILETIME high byte today


def test_references_keep_the_root_and_the_newest(
        composer: Composer, signer: Signer) -> None:
    chain = [f"<m{i}@x.test>" for i in range(40)]
    msg = _compose(composer, signer, references=chain, in_reply_to=chain[-1])
    refs = msg["References"].split()
    assert refs == [chain[0], *chain[-REFERENCES_KEEP_LAST:]]
    assert bounded_references(["<a@x>", "<a@x>", "", "<b@x>"]) == [
        "<a@x>", "<b@x>"]


def test_attachments_make_multipart_mixed_with_encoded_names(
        composer: Composer, signer: Signer) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    msg = _compose(composer, signer, template="merchant_reply",
                   attachments=[("Rechnung März.pdf", "application/pdf", pdf),
                                ("notes.txt", "text/plain", b"line\n")])
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert [p.get_filename() for p in parts] == ["Rechnung März.pdf",
                                                 "notes.txt"]
    assert parts[0].get_content() == pdf
    assert msg.get_body(("plain",)) is not None


def test_non_ascii_display_names_with_specials_survive(
        composer: Composer, signer: Signer) -> None:
    msg = _compose(composer, signer, to_name='Åsa "Ace", Ørsted',
                   from_name="Pixel Forge, Ltd.")
    assert msg["To"].addresses[0].display_name == 'Åsa "Ace", Ørsted'
    assert msg["To"].addresses[0].addr_spec == "zoe.mertens@customer.example"
    assert msg["From"].addresses[0].display_name == "Pixel Forge, Ltd."


def _override(tmp_path: Path, slug: str, name: str, body: str) -> Path:
    folder = tmp_path / "stores" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body)
    return tmp_path


def test_a_store_override_wins_for_that_store_only(
        settings: Settings, signer: Signer, tmp_path: Path) -> None:
    root = _override(tmp_path, "pixel-forge", "new_case.txt",
                     "Own words for case {{ case.id }}.\n")
    _override(root, "pixel-forge", "_subject.txt", "Ticket {{ case.id }}")
    composer = Composer(settings, signer, root)
    subject, text, html = composer.render("new_case", _context())
    assert (subject, text) == ("Ticket 41", "Own words for case 41.\n")
    assert "PF-10042" in html  # the bundled HTML is still used
    other = composer.render("new_case", _context(store=_store("other")))
    assert other[0].startswith("[Pixel Forge Ltd] Case #41")


def test_a_broken_store_override_falls_back_to_the_bundled_template(
        settings: Settings, signer: Signer, tmp_path: Path) -> None:
    root = _override(tmp_path, "pixel-forge", "new_case.txt",
                     "{{ no_such_variable }}")
    subject, text, _ = Composer(settings, signer, root).render(
        "new_case", _context())
    assert "opened a support case" in text


def test_a_subject_block_serves_when_there_is_no_subject_file(
        settings: Settings, signer: Signer, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text(
        "{% block subject %}Hi {{ case.id }}{% endblock %}\nBody\n")
    (tmp_path / "hello.html").write_text("<p>Body</p>")
    subject, text, _ = Composer(settings, signer, tmp_path).render(
        "hello", _context())
    assert subject == "Hi 41"


def test_templates_are_read_once_and_a_change_waits_for_a_restart(
        settings: Settings, signer: Signer, tmp_path: Path) -> None:
    root = _override(tmp_path, "pixel-forge", "new_case.txt",
                     "First words for case {{ case.id }}.\n")
    composer = Composer(settings, signer, root)
    assert composer.render("new_case", _context())[1] == \
        "First words for case 41.\n"
    later = root / "stores" / "pixel-forge" / "new_case.txt"
    later.write_text("Changed words.\n")
    os.utime(later, (time.time() + 60, time.time() + 60))
    assert composer.render("new_case", _context())[1] == \
        "First words for case 41.\n"
    restarted = Composer(settings, signer, root)
    assert restarted.render("new_case", _context())[1] == "Changed words.\n"
