"""``casemail inspect`` shows what we read, as text and as stable JSON."""

from __future__ import annotations

import json

from mailmaker import FIXTURES

from casemail.cli.inspect import inspect_mail, render
from casemail.cli.main import main

STABLE = {"kind", "rules", "subject", "new_text", "removed_text",
          "attachments", "defects"}
FILE_FIELDS = {"filename", "content_type", "declared_type", "size",
               "sha256", "kept", "reason"}


def test_json_has_the_fields_scripts_rely_on(capsys):
    path = FIXTURES / "attachments_mixed.eml"
    assert main(["inspect", "--json", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) >= STABLE
    assert shown["kind"] == "human"
    assert all(set(a) >= FILE_FIELDS for a in shown["attachments"])
    refused = [a["filename"] for a in shown["attachments"] if not a["kept"]]
    assert refused == ["invoice.pdf", "setup.exe"]


def test_one_json_line_per_file(capsys):
    paths = [str(FIXTURES / n) for n in ("gmail_reply.eml",
                                         "no_message_id.eml")]
    assert main(["inspect", "--json", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["file"] for line in lines] == paths


def test_human_form_shows_text_removed_text_and_refusals():
    raw = (FIXTURES / "forwarded_receipt.eml").read_bytes()
    text = render("receipt", inspect_mail(raw))
    assert "-- new text\nHere is the receipt you asked for." in text
    assert "REFUSED run.sh  text/x-script" in text
    assert "from:       Omar Haddad <omar.haddad@example.net>" in text


def test_an_autoreply_is_classified_as_such():
    raw = (b"From: Lina Berg <lina.berg@example.org>\n"
           b"Subject: Out of office\nAuto-Submitted: auto-replied\n\n"
           b"I am away until Monday.\n")
    shown = inspect_mail(raw)
    assert shown["kind"] == "auto-reply"
    assert shown["rules"]


def test_missing_file_is_reported_not_raised(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.eml")]) == 1
    assert "nope.eml" in capsys.readouterr().err


def test_received_trail_is_shown_oldest_first_with_delays():
    raw = (b"Received: from mx.shop.example (mx.shop.example [192.0.2.10])\r\n"
           b"\tby relay.reply.example.test with ESMTPS id 4A1B2;\r\n"
           b"\tMon, 5 Jan 2026 09:02:30 +0000\r\n"
           b"Received: from laptop.home.example ([198.51.100.7])\r\n"
           b"\tby mx.shop.example with ESMTPSA id x1;\r\n"
           b"\tMon, 5 Jan 2026 09:00:00 +0000\r\n"
           b"From: Ana <ana@shop.example>\r\nSubject: hi\r\n\r\nbody\r\n")
    hops = inspect_mail(raw)["received"]
    assert [hop["by"] for hop in hops] == ["mx.shop.example",
                                           "relay.reply.example.test"]
    assert hops[1]["delay"] == 150.0
    assert inspect_mail(b"From: a@b.example\r\n\r\nno trail")["received"] == []
