"""ZIP files are measured by what they really unpack to."""

from __future__ import annotations

import random
import time
import zipfile

import pytest
from mailmaker import forge_zip, zip_of

from casemail.mime.archives import ZIP_MAX_DEPTH
from casemail.mime.attachments import Budget, judge


def check(data: bytes, name: str = "files.zip"):
    return judge(data, filename=name, declared="application/zip",
                 budget=Budget(20 * 2**20, 25 * 2**20))


def noise(size: int, seed: int = 7) -> bytes:
    """Bytes that do not compress, like the pixels of a photo."""
    return random.Random(seed).randbytes(size)


def test_bomb_that_declares_small_sizes_is_refused():
    """The directory claims 40 KB per file; inflating finds 30 MB."""
    data = forge_zip(zip_of({"zeros.bin": bytes(30 * 2**20)}),
                     size=40_000)
    item = check(data)
    assert not item.kept
    assert "zip bomb" in item.reason


def test_entry_larger_than_its_directory_claims_is_refused():
    """Within every limit, but the directory lies: an unpacker that
    trusted it would be misled, so the archive is not kept."""
    data = forge_zip(zip_of({"report.txt": noise(5000)}), size=100)
    item = check(data)
    assert not item.kept
    assert "damaged" in item.reason


def test_zip_inside_a_zip_is_opened_and_its_names_recorded():
    inner = zip_of({"readme.txt": b"key: ABCD-1234\n"})
    item = check(zip_of({"order.txt": b"1042", "logs.zip": inner}))
    assert item.kept, item.reason
    assert item.details["entries"] == ["order.txt", "logs.zip",
                                       "logs.zip/readme.txt"]
    assert item.details["entry_count"] == 3


def test_bomb_inside_a_zip_is_refused():
    inner = zip_of({"zeros.bin": bytes(30 * 2**20)})
    item = check(zip_of({"photos.zip": inner}, zipfile.ZIP_STORED))
    assert not item.kept
    assert "zip bomb" in item.reason


def nested(levels: int) -> bytes:
    data = zip_of({"deepest.txt": b"hello"})
    for level in range(levels - 1):
        data = zip_of({f"level{level}.zip": data})
    return data


def test_nesting_up_to_the_depth_is_kept_and_beyond_refused():
    assert check(nested(ZIP_MAX_DEPTH)).kept
    item = check(nested(ZIP_MAX_DEPTH + 1))
    assert not item.kept
    assert f"nested more than {ZIP_MAX_DEPTH} deep" in item.reason


def test_42_zip_style_fan_out_is_refused_quickly():
    """Sixteen copies of a bomb at every level: refused at the first
    bomb, long before anything near its full size is inflated."""
    data = zip_of({"0.bin": bytes(50 * 2**20)})
    for _ in range(2):
        data = zip_of({f"{n}.zip": data for n in range(16)})
    started = time.perf_counter()
    item = check(data, "42.zip")
    assert time.perf_counter() - started < 2
    assert not item.kept
    assert "zip bomb" in item.reason


def test_entry_limit_counts_the_whole_tree():
    inner = zip_of({f"in{n}.txt": b"x" for n in range(600)})
    outer = {f"out{n}.txt": b"x" for n in range(500)} | {"more.zip": inner}
    item = check(zip_of(outer))
    assert not item.kept
    assert "more than 1000 files" in item.reason


def test_encrypted_zip_is_refused_since_it_cannot_be_looked_into():
    data = forge_zip(zip_of({"invoice.pdf": noise(2000)},
                            zipfile.ZIP_STORED), flags=0x1)
    item = check(data)
    assert not item.kept
    assert "encrypted" in item.reason


def test_compression_we_do_not_check_is_refused():
    item = check(zip_of({"a.txt": b"words " * 100}, zipfile.ZIP_BZIP2))
    assert not item.kept
    assert "method 12" in item.reason


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED,
                                    zipfile.ZIP_STORED])
def test_twenty_megabytes_of_photos_are_kept_fast(method: int):
    photos = {f"IMG_{n:04}.jpg": b"\xff\xd8\xff\xe0" + noise(2**20, n)
              for n in range(19)}
    data = zip_of(photos, method)
    started = time.perf_counter()
    item = check(data)
    took = time.perf_counter() - started
    assert item.kept, item.reason
    assert item.details["uncompressed_size"] == 19 * (2**20 + 4)
    assert took < 1, took


def test_small_repetitive_text_files_compress_well_and_are_kept():
    item = check(zip_of({"log.txt": b"GET /download 200\n" * 40_000}))
    assert item.kept, item.reason
