"""The hub the soak runs and samples: one long-running process, started from a command line.

``HUB_COMMAND`` below is that command line, and the only place it is written. It is a
template; the soak fills in the fields in braces:

=============  ==========================================================================
``{lfr_hub}``  the ``lfr-hub`` program of this installation
``{db}``       the hub database (SQLite file) the soak reads its counts from
``{alert_key}`` the hub alert private key (opens sealed alerts)
``{hub_keys}`` the hub key store folder
``{broker}``   the broker as HOST:PORT
``{pki_dir}``  the broker PKI folder (CA and client certificates)
``{identity}`` the hub identity the process connects as (certificate ``hub.<identity>``)
``{work}``     the soak's working folder (for a config file the command may need)
=============  ==========================================================================

Today the hub is the receiver ``lfr-hub alerts watch``. To soak another hub process (the
hub service, ``lfr-hub serve``), change ``HUB_COMMAND`` or pass ``--hub-command`` to
``python -m hil.soak``; whatever process it starts is the one sampled.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from agent.errors import UsageError

# ─── The hub process under soak. ───────────────────────────────────────────────────────
HUB_COMMAND = (
    "{lfr_hub} alerts watch --db {db} --alert-key {alert_key}"
    " --broker {broker} --pki-dir {pki_dir} --identity {identity}"
)
# ───────────────────────────────────────────────────────────────────────────────────────

HUB_IDENTITY = "soak-hub"  # not "main": the soak's own control link is hub.main
FIELDS = ("lfr_hub", "db", "alert_key", "hub_keys", "broker", "pki_dir", "identity", "work")
STOP_TIMEOUT_S = 30.0


def lfr_hub_program() -> Path:
    """``lfr-hub`` next to this Python (the virtualenv's), as a technician would run it."""
    return Path(sys.executable).parent / "lfr-hub"


def hub_command_line(template: str, values: Mapping[str, str | Path]) -> list[str]:
    """The template's words with its fields filled in; UsageError naming a bad field."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"hub command: {exc}") from None
    if not words:
        raise UsageError("hub command: empty")
    quoted = {k: str(v) for k, v in values.items()}
    out = []
    for word in words:
        try:
            out.append(word.format_map(quoted))
        except KeyError as exc:
            raise UsageError(
                f"hub command: unknown field {{{exc.args[0]}}} (known: {', '.join(FIELDS)})"
            ) from None
        except (ValueError, IndexError) as exc:
            raise UsageError(f"hub command: {word!r}: {exc}") from None
    return out


class HubProcess:
    """The hub as a child process, its output appended to ``log_path``."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> int | None:
        """SIGINT (``lfr-hub`` ends its commands cleanly on it, as on Ctrl-C), then SIGKILL
        if it has not ended in time; its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode
