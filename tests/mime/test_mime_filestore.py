"""Attachment files are stored once, by content, and never half-written."""

from __future__ import annotations

import hashlib

import pytest

from casemail.mime.filestore import path_for, read_file, store_file


def test_file_lands_under_its_sha256_split_in_two_levels(tmp_path):
    data = b"licence key ABCD-EFGH\n"
    digest = store_file(tmp_path, data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert path_for(tmp_path, digest) == \
        tmp_path / digest[:2] / digest[2:4] / digest
    assert read_file(tmp_path, digest) == data


def test_same_content_twice_is_one_file(tmp_path):
    first = store_file(tmp_path, b"same")
    second = store_file(tmp_path, b"same")
    assert first == second
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_a_torn_earlier_write_is_replaced_whole(tmp_path):
    digest = hashlib.sha256(b"complete content").hexdigest()
    target = path_for(tmp_path, digest)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"comp")  # what a crash without rename could leave
    store_file(tmp_path, b"complete content")
    assert target.read_bytes() == b"complete content"


def test_failed_write_leaves_no_temporary_file(tmp_path):
    digest = hashlib.sha256(b"x").hexdigest()
    path_for(tmp_path, digest).mkdir(parents=True)  # rename must fail
    with pytest.raises(OSError):
        store_file(tmp_path, b"x")
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.rglob("*"))
