"""Enrolling a camera while its power is cut: the technician's and operator's commands.

Each trial enrols a new device id in a folder of its own on the device's LazyFS mount:
``lfr-agent enrol request`` (keys made on the device), ``lfr-hub device approve`` at the
hub, ``lfr-agent enrol complete`` (the bundle installed, the config written), then
``lfr-agent enrol status``. After a cut the technician simply runs the steps again; each
must succeed, and the keys must be whole and belong together: the private keys load,
the public files are their halves, the request the hub approved carries them, and the
installed certificate certifies the TLS key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.provisioning.enrolment_request import TLS_KEY_FILE
from agent.trust.device_keys import load_device_keys, load_device_signing_public
from agent.trust.key_files import KeyFileError
from agent.trust.signed_document import loads_untrusted, parse_envelope
from hil.power_cut.power_cut_site import PowerCutSite
from hil.virtual_site import SUPERVISOR, SUPERVISOR_PASSPHRASE

_ROOT_RE = re.compile(r"^\s*hub root\s+([0-9a-f ]{16,})$", re.IGNORECASE | re.MULTILINE)


class EnrolmentTrial:
    def __init__(self, site: PowerCutSite, number: int, guard: Callable[[], None]) -> None:
        self.site = site
        self.device_id = f"lfr-pc-e{number:04d}"
        self.dir = site.device_fs.mount_dir / "enrol-trials" / f"t{number}"
        self.keys = self.dir / "keys"
        self.config = self.dir / "agent.toml"
        self.request = self.dir / "enrol.request"
        self.bundle = site.work / "enrol-bundles" / f"{self.device_id}.bundle"
        self._guard = guard
        self.approved = False

    def _passphrase_file(self) -> Path:
        """The supervisor's passphrase for ``device approve`` (a 0600 file on the hub)."""
        path = self.site.work / "supervisor-passphrase"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(SUPERVISOR_PASSPHRASE + "\n")
        return path

    def _write_config(self) -> None:
        """The technician's config file, written with fsync (an editor saves it so)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = (
            f'[device]\nid = "{self.device_id}"\n\n[paths]\n'
            f'state_dir = "{self.dir / "state"}"\nkeys_dir = "{self.keys}"\n'
            f'models_dir = "{self.site.site.models_dir}"\nruntime_dir = "{self.dir / "run"}"\n'
        )
        if self.config.exists():
            return
        with self.config.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def run(self) -> list[str]:
        """All steps; returns the failures (a cut raises through the guard instead)."""
        self._guard()
        self._write_config()
        code, out = self.site.device_tool(
            "enrol",
            "request",
            "--id",
            self.device_id,
            "--out",
            str(self.request),
            "--config",
            str(self.config),
            "--keys-dir",
            str(self.keys),
        )
        self._guard()
        if code != 0:
            return [f"enrol request failed ({code}): {out.strip()[-300:]}"]
        self.bundle.parent.mkdir(parents=True, exist_ok=True)
        broker = self.site.broker
        args = [
            "device",
            "approve",
            str(self.request),
            "--out",
            str(self.bundle),
            "--hub-dir",
            str(self.site.site.hub_dir),
            "--pki-dir",
            str(broker.pki_dir),
            "--broker-url",
            f"mqtts://{broker.host}:{broker.port}",
            "--operator",
            SUPERVISOR,
            "--passphrase-file",
            str(self._passphrase_file()),
        ]
        if self.approved:
            args.append("--replace")
        code, out = self.site.hub_tool(*args)
        self._guard()
        if code != 0:
            return [f"device approve failed ({code}): {out.strip()[-300:]}"]
        self.approved = True
        m = _ROOT_RE.search(out)
        if m is None:
            return [f"device approve printed no hub root fingerprint: {out.strip()[-200:]}"]
        fingerprint = m.group(1).replace(" ", "")
        code, out = self.site.device_tool(
            "enrol",
            "complete",
            str(self.bundle),
            "--root-fingerprint",
            fingerprint,
            "--config",
            str(self.config),
            "--keys-dir",
            str(self.keys),
        )
        self._guard()
        if code != 0:
            return [f"enrol complete failed ({code}): {out.strip()[-300:]}"]
        code, out = self.site.device_tool("enrol", "status", "--config", str(self.config))
        self._guard()
        if code != 0:
            return [f"enrol status says not enrolled ({code}): {out.strip()[-300:]}"]
        return self.keys_whole()

    def keys_whole(self) -> list[str]:
        problems = []
        try:
            keys = load_device_keys(self.keys)
            public = load_device_signing_public(self.keys)
        except KeyFileError as exc:
            return [f"enrolment keys: {exc}"]
        if public != keys.signing.public_key():
            problems.append("device-ed25519-pub.pem is not the public half of the signing key")
        try:
            _, body, _ = parse_envelope(self.request.read_bytes())
            fields = loads_untrusted(body)
            asked = serialization.load_pem_public_key(fields["signing_public_pem"].encode())
            if asked != keys.signing.public_key():
                problems.append(
                    "the enrolment request carries another signing key than the device holds"
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"enrolment request unreadable: {exc}")
        try:
            tls = serialization.load_pem_private_key((self.keys / TLS_KEY_FILE).read_bytes(), None)
            cert = x509.load_pem_x509_certificate((self.keys / "device-cert.pem").read_bytes())
            if cert.public_key() != tls.public_key():
                problems.append("the installed certificate does not certify the device's TLS key")
        except (OSError, ValueError) as exc:
            problems.append(f"TLS key or certificate unreadable: {exc}")
        return problems


def trial_folder(site: PowerCutSite) -> Path:
    return site.device_fs.mount_dir / "enrol-trials"
