"""Each kind of real-world mail, written by us, read the way a person would."""

from __future__ import annotations

from mailmaker import FIXTURES
from mailmaker import read_fixture as read

from casemail.mime.reader import read_mail


def test_apple_mail_text_around_an_image_stays_in_order_and_flowed():
    mail = read("apple_split_text.eml")
    assert mail.new_text == ("This is what I see when I start the program:"
                             "\n\nAnd it happens every time.")
    assert "Could you send a screenshot?" in mail.removed_text
    assert [a.filename for a in mail.attachments] == ["error.png"]


def test_html_only_outlook_reply_becomes_text_without_history():
    mail = read("html_only_outlook.eml")
    assert mail.new_text == ("I paid yesterday but the subscription still "
                             "shows “inactive”.\n\nRegards,\nPriya")
    assert "Is the payment complete?" in mail.removed_text
    assert "never shown" not in mail.full_text


def test_cid_image_without_disposition_is_an_inline_attachment():
    mail = read("inline_cid_image.eml")
    [image] = mail.attachments
    assert image.kept and image.inline
    assert image.content_id == "shot1@example.com"
    assert f"cid:{image.content_id}" in mail.html
    assert image.safe_name == "attachment.png"


def test_forwarded_receipt_text_is_readable_and_its_files_are_judged():
    mail = read("forwarded_receipt.eml")
    assert mail.new_text.startswith("Here is the receipt you asked for.")
    assert "Order 5521: Pixel Forge Pro" in mail.new_text
    [receipt] = mail.forwarded
    assert receipt.subject == "Receipt for order 5521"
    found = {a.filename: a for a in mail.attachments}
    assert found["receipt.pdf"].kept
    assert found["receipt.pdf"].details["forwarded"] == receipt.message_id
    assert not found["run.sh"].kept
    assert "script" in found["run.sh"].reason


def test_forwarded_mail_without_id_gets_a_stable_derived_one():
    first = read("forwarded_receipt.eml").forwarded[0].message_id
    assert first.endswith("@derived.casemail>")
    assert read("forwarded_receipt.eml").forwarded[0].message_id == first


def test_winmail_dat_is_unpacked_and_its_files_judged():
    mail = read("outlook_winmail.eml")
    assert mail.new_text == "Anbei die Rechnung und das Protokoll."
    found = {a.filename: a for a in mail.attachments}
    assert set(found) == {"protokoll.txt", "update.exe"}
    assert found["protokoll.txt"].kept
    assert found["protokoll.txt"].details["container"] == "winmail.dat"
    assert not found["update.exe"].kept


def test_header_words_in_any_charset_and_split_characters_decode():
    mail = read("charsets_and_names.eml")
    assert mail.sender is not None
    assert mail.sender.name == "Álvaro Pérez"  # split inside "Á"
    assert mail.subject == "Привет and café"  # koi8-r, unknown label


def test_body_bytes_that_do_not_fit_the_label_fall_back_to_windows_1252():
    mail = read("charsets_and_names.eml")
    assert mail.new_text.endswith("Gracias, Álvaro")
    assert "text does not fit its charset 'us-ascii'" in mail.defects


def test_file_names_from_rfc2231_and_broken_labels_read_as_written():
    names = [a.filename for a in read("charsets_and_names.eml").attachments]
    assert names[0] == "factura nº 42.txt"  # continuations, language tag
    assert names[1] == "été.txt"  # 8-bit bytes claimed as us-ascii


def test_path_in_a_file_name_never_reaches_the_safe_name():
    item = read("charsets_and_names.eml").attachments[2]
    assert item.filename == "../../etc/passwd.txt"
    assert item.safe_name == "passwd.txt"
    assert item.data == "ok é".encode()  # odd-case encoding with spaces


def test_unclosed_boundary_and_bad_base64_still_give_the_text():
    mail = read("malformed_boundary.eml")
    assert mail.new_text == "Olá, o link não funciona."
    assert "multipart end boundary missing" in mail.defects
    assert mail.message_id.endswith("@derived.casemail>")


def test_bytes_that_are_no_mail_are_kept_and_described():
    raw = (FIXTURES / "garbage_headers.eml").read_bytes()
    mail = read_mail(raw)
    assert mail.raw == raw
    assert "no headers: this is not a mail" in mail.defects
    assert mail.sender is None
