"""One LazyFS mount under test control: mount, arm faults, cut the power, mount again.

LazyFS (``../shared/tools/lazyfs``, built by ``make lazyfs`` into ``var/lazyfs``) is a FUSE
pass-through that keeps written file data in its own cache until the program fsyncs it.
Metadata (create, rename, unlink, mkdir) reaches the lower folder at once. A power cut is
therefore: the program dies (SIGKILL), then everything LazyFS still caches is dropped.
LazyFS's own crash faults kill LazyFS itself at an exact operation, which drops its cache
with it; the program's next file operation then fails with ENOTCONN, and the harness
SIGKILLs it at once.

Commands go through LazyFS's FIFO, one at a time: LazyFS reads the FIFO in chunks and takes
a chunk as one command, so each command waits for LazyFS to log that it took it.

Quirks of this LazyFS version the harness works around (all checked on this machine):

* it reads the FIFO 100 bytes at a time and takes each chunk as one command, so a longer
  command is cut in two (the first half may still be a valid, wrong fault): a command
  longer than that is refused here;
* faults match the path LazyFS itself uses for the file: the lower folder's path. LazyFS
  is given a short symbolic link to the mount's folder (``/tmp/lz<random>``) so that
  path stays short;
* a ``--config-path`` holding ``-o`` (as in ``pytest-of-root``) is taken for a FUSE
  option and the default config is used: the config is named through that link too;
* a ``rename`` fault with only ``to_rgx`` never fires, and one with ``from_rgx`` and
  ``to_rgx`` ignores ``from_rgx``: a placeholder ``from_rgx`` is sent with the ``to_rgx``
  (so the destination alone decides);
* torn faults (``torn-op``, ``torn-seq``) name one exact path. One that cannot be sent
  within 100 bytes can be given to ``mount()`` instead, in LazyFS's config file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where ``make lazyfs`` builds it (``../shared/tools/lazyfs/build.sh var/lazyfs``).
DEFAULT_BINARY = REPO_ROOT / "var" / "lazyfs" / "lazyfs" / "build" / "lazyfs"
FUSERMOUNT = "fusermount3"
#: Placeholder for the ignored ``from_rgx`` of a rename fault (must not occur in "none").
_ANY_SOURCE = "Q"
#: LazyFS's FIFO read size: every command with its newline must fit.
MAX_COMMAND_BYTES = 100
#: Where the short links to lower folders go (see ``fault_path``).
LINK_DIR = Path("/tmp")
#: Operations LazyFS can stop at (its ``allow_crash_fs_operations``).
CRASH_OPS = frozenset(
    {"unlink", "truncate", "fsync", "write", "create", "access", "open", "read", "rename"}
)
_MULTI_PATH_OPS = frozenset({"rename", "link", "symlink"})


class LazyFsError(RuntimeError):
    """LazyFS could not be built, mounted, commanded or unmounted."""


def find_binary() -> Path:
    """The LazyFS binary: ``$LFR_LAZYFS`` or the one ``make lazyfs`` built."""
    given = os.environ.get("LFR_LAZYFS")
    path = Path(given) if given else DEFAULT_BINARY
    if not path.is_file() or not os.access(path, os.X_OK):
        raise LazyFsError(
            f"LazyFS not found at {path}: build it with `make lazyfs` "
            "(or point LFR_LAZYFS at the binary)"
        )
    return path


def fuse_usable() -> str | None:
    """Why FUSE cannot be used here (None when it can): LazyFS needs /dev/fuse and root."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse does not exist"
    if os.geteuid() != 0:
        return "LazyFS mounts need root here (allow_other and /dev/fuse)"
    if shutil.which(FUSERMOUNT) is None:
        return f"{FUSERMOUNT} is not installed (apt-get install fuse3)"
    return None


@dataclass(frozen=True)
class CrashFault:
    """Stop LazyFS ``timing`` (before/after) the first ``op`` on a matching path.

    Patterns are regular expressions LazyFS wraps in ``.*….*`` and matches against the
    lower folder's path; for a rename ``path_rgx`` matches the destination."""

    op: str
    timing: str
    path_rgx: str

    def command(self) -> str:
        if self.op not in CRASH_OPS:
            raise LazyFsError(f"lazyfs: cannot stop at operation {self.op!r}")
        if self.timing not in ("before", "after"):
            raise LazyFsError(f"lazyfs: timing must be before or after, not {self.timing!r}")
        if self.op in _MULTI_PATH_OPS:
            where = f"from_rgx={_ANY_SOURCE}::to_rgx={self.path_rgx}"
        else:
            where = f"from_rgx={self.path_rgx}"
        return f"lazyfs::crash::timing={self.timing}::op={self.op}::{where}"


@dataclass(frozen=True)
class TornOp:
    """The next write to ``path`` (as LazyFS names it: ``LazyFsMount.fault_path``) is cut
    in ``parts`` equal parts; only those numbered in ``persist`` (1-based) reach the disk,
    then LazyFS stops."""

    path: str
    parts: int
    persist: tuple[int, ...]

    def command(self) -> str:
        keep = ",".join(str(p) for p in self.persist)
        return f"lazyfs::torn-op::file={self.path}::persist={keep}::parts={self.parts}"

    def config(self) -> str:
        keep = ",".join(str(p) for p in self.persist)
        return (
            f'[[injection]]\ntype="torn-op"\nfile="{self.path}"\noccurrence=1\n'
            f"parts={self.parts}\npersist=[{keep}]\n"
        )


@dataclass(frozen=True)
class TornSeq:
    """In the next run of two or more writes to ``path`` with no fsync between them, only
    the writes numbered in ``persist`` (1-based) reach the disk, then LazyFS stops."""

    path: str
    persist: tuple[int, ...]

    def command(self) -> str:
        keep = ",".join(str(p) for p in self.persist)
        return f"lazyfs::torn-seq::op=write::file={self.path}::persist={keep}"

    def config(self) -> str:
        keep = ",".join(str(p) for p in self.persist)
        return (
            f'[[injection]]\ntype="torn-seq"\nop="write"\nfile="{self.path}"\n'
            f"occurrence=1\npersist=[{keep}]\n"
        )


Fault = CrashFault | TornOp | TornSeq


class LazyFsMount:
    """``mount_dir`` shows ``lower_dir`` through LazyFS; ``power_cut()`` loses what was not
    fsynced, ``mount()`` brings it back as after a reboot."""

    def __init__(self, work_dir: Path, name: str, binary: Path | None = None) -> None:
        self.binary = binary or find_binary()
        self.dir = work_dir / name
        self.lower_dir = self.dir / "lower"
        self.link = LINK_DIR / f"lz{secrets.token_hex(3)}"
        self.mount_dir = self.dir / "mnt"
        self.fifo = self.dir / "faults.fifo"
        self.log_path = self.dir / "lazyfs.log"
        self.config_path = self.dir / "lazyfs.toml"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_seen = 0
        self._cutting = False
        self.mounts = 0
        #: Called (from a watcher thread) the moment LazyFS stops by itself: a fault
        #: fired. The program on the mount must die at once, as in a real power cut.
        self.on_death: Callable[[], None] | None = None
        for d in (self.lower_dir, self.mount_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(self.dir.resolve(), target_is_directory=True)

    def _write_config(self, injections: list[TornOp | TornSeq]) -> None:
        self.config_path.write_text(
            "[faults]\n"
            f'fifo_path="{self.fifo}"\n'
            "[cache]\n"
            "apply_eviction=false\n"
            "[cache.simple]\n"
            'custom_size="512mb"\n'
            "blocks_per_page=1\n"
            "[filesystem]\n"
            "log_all_operations=false\n"
            f'logfile="{self.log_path}"\n' + "".join(i.config() for i in injections),
            encoding="utf-8",
        )

    # ---- life cycle ----------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def mount(self, timeout: float = 20.0, injections: tuple[TornOp | TornSeq, ...] = ()) -> None:
        """Mount (again): a fresh LazyFS over the same lower folder, nothing cached, with
        ``injections`` armed from the start."""
        if self.alive:
            raise LazyFsError(f"lazyfs: {self.mount_dir} is already mounted")
        self._detach()
        self._write_config(list(injections))
        log = self.dir / "lazyfs.stdout"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    str(self.binary),
                    str(self.mount_dir),
                    "--config-path",
                    str(self.link / self.config_path.name),
                    "-o",
                    "allow_other",
                    "-o",
                    "modules=subdir",
                    "-o",
                    f"subdir={self.link / self.lower_dir.name}",
                    "-f",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not (os.path.ismount(self.mount_dir) and self.fifo.exists()):
            if self._proc.poll() is not None:
                raise LazyFsError(
                    f"lazyfs exited at mount (code {self._proc.returncode}); see {log}"
                )
            if time.monotonic() > deadline:
                self.unmount()
                raise LazyFsError(f"lazyfs: {self.mount_dir} not mounted within {timeout:.0f} s")
            time.sleep(0.02)
        self.mounts += 1
        # Faults are answered in the log; only lines from now on count.
        self._log_seen = self._log_size()
        self._cutting = False
        proc = self._proc
        threading.Thread(target=self._watch, args=(proc,), name="lazyfs-watch", daemon=True).start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        if not self._cutting and self.on_death is not None:
            self.on_death()

    def power_cut(self) -> None:
        """Lose every unsynced byte: stop LazyFS (its cache goes with it) and detach the
        mount. The program using the mount must already be dead (SIGKILL first)."""
        self._cutting = True
        if self.alive:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGKILL)
        self._reap()
        self._detach()

    def unmount(self) -> None:
        """A clean unmount (not a power cut: LazyFS is asked to stop, after its cache
        was written out by the program's own fsyncs; unsynced data is lost either way)."""
        self._cutting = True
        if self.alive:
            subprocess.run([FUSERMOUNT, "-u", str(self.mount_dir)], capture_output=True)
            assert self._proc is not None
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()
        self._detach()

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired as exc:
                raise LazyFsError(f"lazyfs pid {self._proc.pid} did not exit") from exc
            self._proc = None

    def _detach(self) -> None:
        # A LazyFS that died leaves its mount point as "transport endpoint not connected"
        # until it is detached; -z detaches it even if something still holds it.
        if os.path.ismount(self.mount_dir) or _is_dead_mount(self.mount_dir):
            subprocess.run([FUSERMOUNT, "-u", "-z", str(self.mount_dir)], capture_output=True)

    # ---- faults --------------------------------------------------------------------
    def arm(self, fault: Fault) -> None:
        """Arm a fault; returns once LazyFS has taken it."""
        expect = (
            "received: VALID crash fault"
            if isinstance(fault, CrashFault)
            else "configured successfully"
        )
        self._command(fault.command(), expect)

    def clear_cache(self) -> None:
        """Drop unsynced data now (LazyFS keeps running)."""
        self._command("lazyfs::clear-cache", "cache is cleared")

    def checkpoint(self) -> None:
        """Write everything cached to the lower folder (as if the program had fsynced)."""
        self._command("lazyfs::cache-checkpoint", "checkpoint is done")

    def fired(self) -> bool:
        """Whether LazyFS stopped itself at an armed fault (rather than being cut)."""
        return "Killing LazyFS pid" in self._log_tail()

    def _command(self, command: str, expect: str, timeout: float = 10.0) -> None:
        if len(command.encode()) + 1 > MAX_COMMAND_BYTES:
            raise LazyFsError(
                f"lazyfs: command longer than {MAX_COMMAND_BYTES - 1} bytes: {command}"
            )
        if not self.alive:
            raise LazyFsError(f"lazyfs: not running, cannot send {command!r}")
        fd = os.open(self.fifo, os.O_WRONLY)
        try:
            os.write(fd, (command + "\n").encode())
        finally:
            os.close(fd)
        deadline = time.monotonic() + timeout
        while True:
            tail = self._log_tail()
            if expect in tail:
                self._log_seen = self._log_size()
                return
            if "INVALID" in tail:
                raise LazyFsError(f"lazyfs refused {command!r}: {tail.strip()[-300:]}")
            if not self.alive or time.monotonic() > deadline:
                raise LazyFsError(f"lazyfs did not take {command!r}")
            time.sleep(0.005)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_seen)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # ---- paths ---------------------------------------------------------------------
    def fault_path(self, relative: str) -> str:
        """The path LazyFS uses for a file of the mount (``relative`` to the mount)."""
        return f"{self.link}/{self.lower_dir.name}/{relative}"

    def remove_link(self) -> None:
        """Remove the short link (once the mount is gone for good)."""
        self.link.unlink(missing_ok=True)


def _is_dead_mount(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == 107  # ENOTCONN: the FUSE process is gone
    return False
