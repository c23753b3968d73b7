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


def write_atomic(
    path: Path, data: bytes, mode: int, tmp_prefix: str = ".", tmp_name: str | None = None
) -> None:
    """Replace ``path`` with ``data`` (file ``mode``) atomically and durably.

    The temporary file is ``<tmp_prefix><name>.<random>`` beside the target, so a reader
    of the folder can recognise (and discard) one left by a crash. A writer that holds
    its folder's lock may name it instead (``tmp_name``, beside the target): a leftover
    then says which write it was (the outbox names the alert sequence number).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp_name is None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{tmp_prefix}{path.name}.")
    else:
        tmp = str(path.parent / tmp_name)
        Path(tmp).unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
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
