"""Figures read from the files a run leaves: folder sizes, the outbox, and the lines
appended to a log or the audit log since the last look.

Logs and the audit log are read incrementally (``GrowingFile``): a 12-hour run must not
re-read a file that grows all along on every 10-second sample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FolderSize:
    files: int
    bytes: int


def folder_size(root: Path, pattern: str = "*") -> FolderSize:
    """Regular files under ``root`` matching ``pattern`` (recursively) and their bytes.

    Files that vanish while they are counted (an acknowledged outbox entry) are skipped."""
    files = total = 0
    if not root.is_dir():
        return FolderSize(0, 0)
    for path in root.rglob(pattern):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if path.is_file():
            files += 1
            total += st.st_size
    return FolderSize(files, total)


def file_bytes(*paths: Path) -> int:
    """Total size of the files that exist among ``paths`` (a database and its -wal)."""
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total


class GrowingFile:
    """New complete lines of a file that is appended to, each time ``new_lines`` is called.

    A file replaced or truncated (smaller than what was read, or another inode) is read
    again from its start. A last line without its newline waits for the next call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode: int | None = None
        self._partial = b""

    def new_lines(self) -> list[bytes]:
        try:
            with self.path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:
                    self._inode, self._offset, self._partial = st.st_ino, 0, b""
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return lines


class LineRate:
    """Lines appended to a log per minute between two calls (None on the first)."""

    def __init__(self, path: Path) -> None:
        self._file = GrowingFile(path)
        self._last: float | None = None
        self.total = 0

    def per_minute(self, wall: float) -> float | None:
        n = len(self._file.new_lines())
        self.total += n
        last, self._last = self._last, wall
        if last is None or wall <= last:
            return None
        return n * 60.0 / (wall - last)
