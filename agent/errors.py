"""Error types shared by every part of the agent.

Every error the user can cause carries a one-line message that names the
problem (the key, the file, the step) so the CLI can print it as it is.
"""

from __future__ import annotations


class LfrError(Exception):
    """Base of all expected, user-facing errors. ``str(err)`` is one line."""

    exit_code = 3


class UsageError(LfrError):
    """Bad command-line arguments or bad input files."""

    exit_code = 2


class ConfigError(LfrError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class CheckFailed(LfrError):
    """A verification ran and the thing verified is not valid (model hash, token, audit log)."""

    exit_code = 1


class ModelError(LfrError):
    """A model file is missing, unpinned, or does not match its pinned hash."""

    exit_code = 1


class CameraError(LfrError):
    """A camera source could not be opened, or died while capturing."""

    exit_code = 3
