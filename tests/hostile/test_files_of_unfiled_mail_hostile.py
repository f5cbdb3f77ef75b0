"""Files of a mail that no case takes are written to disk all the same,
and stay there, named by nothing.

A mail's kept files are now written while it is read, before anyone has
decided where the mail goes. The pipeline's contract for a mail that
belongs to no case is "answered 550, nothing kept", and mail for the
postmaster is kept for a person, applied to no case and holds no
attachment rows. Yet any sender, with no reply address at all, can send
mail to the token-less ``case@`` address (accepted at RCPT, refused only
after DATA) or to postmaster@, each with up to 25 MB of distinct files,
and every file stays in files_dir for good: nothing records it, nothing
removes it, and the disk fills. Before the files were written inside
the transaction, a refused mail left nothing behind.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest
from hostile_serve import Letter, make_mail, open_cases, send_once, tiny_png
from sqlalchemy import func, select

from casemail.addresses import Party
from casemail.config import Settings, load_settings
from casemail.db import models as m
from casemail.runtime import Runtime


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        None, data_dir=tmp_path / "var", database_url=db_url,
        signing_keys={"1": "hostile-unfiled-files-key-0123456789"},
        listener={"host": "127.0.0.1", "port": 0})


def png(n: int) -> bytes:
    """A small real PNG, different for every ``n``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"\x00" + bytes([n % 256, n // 256 % 256, 7]) * 2 \
        + b"\x00" + b"\x00\xff\x00" * 2
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def with_file(to: str, n: int) -> Letter:
    mid = f"<stray-{n}@elsewhere.example>"
    raw = make_mail(sender="anyone@elsewhere.example", to=to,
                    subject="Hello", text="See the file.", message_id=mid,
                    png="x.png")
    # The kit's PNG is the same for every mail: make each file differ.
    raw = raw.replace(_b64(tiny_png()), _b64(png(n)))
    return Letter(mid, "anyone@elsewhere.example", to, raw)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def files_on_disk(rt: Runtime) -> list[Path]:
    root = rt.settings.files_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) \
        if root.is_dir() else []


def test_a_mail_refused_for_no_case_leaves_no_file(
        runtime: Runtime, port: int) -> None:
    base = f"case@{runtime.settings.reply_domain}"
    for n in range(5):
        code, text = send_once(port, with_file(base, n))
        assert code == 550, text
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.RawMail)) == 0
    assert files_on_disk(runtime) == []


def test_mail_for_the_postmaster_leaves_no_file_that_nothing_names(
        runtime: Runtime, port: int) -> None:
    postmaster = f"postmaster@{runtime.settings.reply_domain}"
    for n in range(3):
        code, text = send_once(port, with_file(postmaster, n))
        assert (code, text) == (250, "2.0.0 Message kept for the postmaster")
    with runtime.sessions() as s:
        named = set(s.scalars(select(m.Attachment.sha256)))
    assert [p for p in files_on_disk(runtime) if p.name not in named] == []


def test_an_answer_to_a_case_this_database_lacks_is_refused_and_leaves_nothing(
        runtime: Runtime, port: int) -> None:
    # Our own signed Message-ID, for a case not in this database (a
    # restored backup, a key shared with a staging installation): the
    # mail belongs to no case here — refused, not kept in quarantine to
    # fail again and again, and none of its files written.
    base = f"case@{runtime.settings.reply_domain}"
    ours = runtime.signer.message_id(424242, Party.CUSTOMER)
    letter = with_file(base, 7)
    letter = Letter(letter.message_id, letter.mail_from, letter.rcpt,
                    f"In-Reply-To: {ours}\r\n".encode() + letter.data)

    code, text = send_once(port, letter)

    assert code == 550 and "belongs to no case" in text, text
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.RawMail)) == 0
    assert files_on_disk(runtime) == []


def test_an_answer_naming_a_lacking_case_and_a_held_one_goes_to_the_held_one(
        runtime: Runtime, port: int) -> None:
    # In-Reply-To names a case this database lacks; References, further
    # back, one it holds: the mail belongs to that one, not to no case.
    [case] = open_cases(runtime, 1)
    base = f"case@{runtime.settings.reply_domain}"
    lacking = runtime.signer.message_id(424242, Party.CUSTOMER)
    held = runtime.signer.message_id(case, Party.CUSTOMER)
    letter = with_file(base, 8)
    letter = Letter(letter.message_id, letter.mail_from, letter.rcpt,
                    f"In-Reply-To: {lacking}\r\nReferences: {held} {lacking}"
                    "\r\n".encode() + letter.data)

    code, text = send_once(port, letter)

    assert (code, text) == (250, "2.0.0 Message filed")
    with runtime.sessions() as s:
        assert s.scalars(select(m.RawMail.case_id)).all() == [case]
