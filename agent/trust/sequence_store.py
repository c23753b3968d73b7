"""The last accepted activation sequence number, kept across restarts and power cuts.

The file ``state_dir/activation-sequence.json`` holds ``{"last_sequence": N}``
(canonical JSON). It is replaced atomically: written to a temporary file in the
same folder, fsynced, renamed over the old one, then the folder is fsynced. A
power cut leaves either the old or the new value, never a mix; a leftover
temporary file is ignored. A file that exists but cannot be read is an error
(fail closed: no activation is accepted until someone looks).
"""

from __future__ import annotations

import threading
from pathlib import Path

from agent.errors import CheckFailed
from agent.trust.key_files import write_atomic
from agent.trust.signed_document import canonical_json, loads_untrusted

SEQUENCE_FILE = "activation-sequence.json"


class SequenceStoreError(CheckFailed):
    """The sequence file is unreadable or corrupt."""


class SequenceStore:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._lock = threading.Lock()

    @classmethod
    def in_state_dir(cls, state_dir: Path, read_only: bool = False) -> SequenceStore:
        return cls(state_dir / SEQUENCE_FILE, read_only)

    def last(self) -> int:
        """The last accepted sequence, 0 when none was ever accepted."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise SequenceStoreError(f"sequence store: {self.path}: {exc.strerror}") from exc
        try:
            value = loads_untrusted(data)["last_sequence"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SequenceStoreError(f"sequence store: {self.path}: corrupt") from exc
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SequenceStoreError(f"sequence store: {self.path}: corrupt")
        return value

    def advance(self, sequence: int) -> None:
        """Record ``sequence`` as accepted; it must be greater than the stored one."""
        if self.read_only:
            raise SequenceStoreError("sequence store: opened read-only")
        with self._lock:
            last = self.last()
            if sequence <= last:
                raise SequenceStoreError(
                    f"sequence store: {sequence} is not greater than the stored {last}"
                )
            write_atomic(self.path, canonical_json({"last_sequence": sequence}), 0o600)
