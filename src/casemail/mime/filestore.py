"""Attachment files on disk, addressed by their sha256.

The same file sent twice is stored once. Writes are atomic (temporary
file, fsync, rename), so a crash never leaves half a file under a name
that says it is complete. The path is ``files_dir/ab/cd/<sha256>``; the
sender's file name never touches the file system.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


def path_for(files_dir: Path, sha256: str) -> Path:
    return Path(files_dir) / sha256[:2] / sha256[2:4] / sha256


def store_file(files_dir: Path, data: bytes, digest: str = "") -> str:
    """Store ``data`` (once) and return its sha256 hex digest.

    ``digest``: the sha256 already computed by whoever read the file (it
    names the file, so a wrong one would misfile it: the reader's own)."""
    digest = digest or hashlib.sha256(data).hexdigest()
    target = path_for(files_dir, digest)
    if target.exists() and target.stat().st_size == len(data):
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    log.debug("stored file %s (%d bytes)", digest, len(data))
    return digest


# No write still under way is this old (a 25 MB file takes well under a
# second), so another instance sharing the folder loses nothing.
STALE_PART_AGE = 3600.0


def remove_stale_parts(files_dir: Path, *,
                       older_than: float = STALE_PART_AGE) -> int:
    """Remove the temporary files of writes a crash cut short (killed
    between writing and renaming): each can be as large as the mail it
    came with, and nothing else would ever remove it. Returns how many
    were removed."""
    cutoff = time.time() - older_than
    removed = 0
    for folder, _dirs, names in os.walk(files_dir):
        for name in names:
            if not name.startswith(".tmp-"):
                continue
            part = Path(folder) / name
            try:
                if part.stat().st_mtime < cutoff:
                    part.unlink()
                    removed += 1
            except OSError:
                # Removed by another instance first, or not ours to
                # remove: either way nothing to do about it here.
                continue
    if removed:
        log.info("removed %d files of writes cut short in %s", removed,
                 files_dir)
    return removed


def read_file(files_dir: Path, sha256: str) -> bytes:
    return path_for(files_dir, sha256).read_bytes()


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
