"""The deployment lock: no software update while a deployment is live.

While an activation is live the agent holds an exclusive ``flock(2)`` on
``<paths.runtime_dir>/deployment.lock`` (``/run/lfr-agent/deployment.lock``)
and writes into it which deployment holds it. Update tooling takes the same
lock without waiting before it touches anything, and gives up if it is held::

    flock -n -E 75 /run/lfr-agent/deployment.lock apt-get -y upgrade

(``deploy/update-guard.sh`` wraps this and prints who holds the lock.) The lock
works both ways: while an update holds it, the agent cannot take it and so
refuses to start a deployment. The kernel drops a flock when its holder dies,
so a crashed agent never leaves a stale lock behind; the file's content is only
informative and is cleared on release.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.errors import LfrError

LOCK_NAME = "deployment.lock"
_MAX_CONTENT = 4096


class UpdateLockError(LfrError):
    """The deployment lock file cannot be created, opened or written."""

    exit_code = 3


class DeploymentLockBusy(UpdateLockError):
    """Someone else (an update, or another agent) holds the lock."""


@dataclass(frozen=True)
class LockStatus:
    path: Path
    held: bool
    deployment_id: str | None = None
    pid: int | None = None
    since: str | None = None

    def describe(self) -> str:
        if not self.held:
            return f"free: no deployment is live ({self.path})"
        if self.deployment_id:
            who = f"deployment {self.deployment_id}"
            if self.since:
                who += f" since {self.since}"
            if self.pid:
                who += f" (pid {self.pid})"
            return f"held by {who}: updates must wait ({self.path})"
        return f"held by another process, probably an update in progress ({self.path})"


def lock_path(runtime_dir: Path) -> Path:
    return runtime_dir / LOCK_NAME


class DeploymentLock:
    """Held by the agent from activation to the end of the deployment.

    ``acquire`` raises :class:`DeploymentLockBusy` when an update holds the lock
    and :class:`UpdateLockError` when the file cannot be used; ``release`` never
    raises. Also a context manager.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.deployment_id: str | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def prepare(self) -> None:
        """Create the (unlocked, empty) lock file so update tooling always finds it.

        Called once at start-up; raises :class:`UpdateLockError` if impossible.
        """
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise UpdateLockError(f"deployment lock {self.path}: {exc.strerror}") from exc
        os.close(fd)

    def acquire(self, deployment_id: str, wait_s: float = 1.0) -> None:
        """Take the lock for ``deployment_id``, retrying for up to ``wait_s`` seconds.

        The short retry rides out a concurrent ``update-lock status`` probe,
        which holds a shared lock for an instant.
        """
        if self._fd is not None:
            if deployment_id == self.deployment_id:
                return
            raise UpdateLockError(
                f"deployment lock {self.path}: already held for deployment {self.deployment_id}"
            )
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise UpdateLockError(f"deployment lock {self.path}: {exc.strerror}") from exc
        give_up = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
                if busy and time.monotonic() < give_up:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                if busy:
                    raise DeploymentLockBusy(
                        f"deployment lock {self.path} is held by another process "
                        "(an update in progress?); not starting deployment"
                    ) from exc
                raise UpdateLockError(f"deployment lock {self.path}: {exc.strerror}") from exc
        content = {
            "deployment_id": deployment_id,
            "pid": os.getpid(),
            "since": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(content, sort_keys=True) + "\n").encode(), 0)
        except OSError:
            # The lock itself is what update tooling honours; the content only explains it.
            pass
        self._fd = fd
        self.deployment_id = deployment_id

    def release(self) -> None:
        fd, self._fd = self._fd, None
        self.deployment_id = None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> DeploymentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_status(path: Path) -> LockStatus:
    """Whether the lock is held right now, and by which deployment (without taking it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return LockStatus(path=path, held=False)
    except OSError as exc:
        raise UpdateLockError(f"deployment lock {path}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UpdateLockError(f"deployment lock {path}: not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UpdateLockError(f"deployment lock {path}: {exc.strerror}") from exc
            held = True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            held = False
        raw = os.pread(fd, _MAX_CONTENT, 0) if held else b""
    finally:
        os.close(fd)
    if not held:
        return LockStatus(path=path, held=False)
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        info = None
    if not isinstance(info, dict):
        return LockStatus(path=path, held=True)
    dep = info.get("deployment_id")
    pid = info.get("pid")
    since = info.get("since")
    return LockStatus(
        path=path,
        held=True,
        deployment_id=dep if isinstance(dep, str) else None,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        since=since if isinstance(since, str) else None,
    )
