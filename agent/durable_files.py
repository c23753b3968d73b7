"""Writing files so that a power cut leaves either the old content or the new, never a mix.

Write to a temporary file in the same folder, fsync it, rename it over the target, then
fsync the folder so the rename itself is on disk. Every durable file of the agent (keys,
models, sequence numbers, sealed watchlists, outbox entries, reports) is written here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (creations, renames, deletions) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int, tmp_prefix: str = ".") -> None:
    """Replace ``path`` with ``data`` (file ``mode``) atomically and durably.

    The temporary file is ``<tmp_prefix><name>.<random>`` beside the target, so a reader
    of the folder can recognise (and discard) one left by a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{tmp_prefix}{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
