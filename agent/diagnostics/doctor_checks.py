"""The checks behind ``lfr-agent doctor``: one result per check, each failure with a fix hint.

Every check returns a :class:`CheckResult` and never raises for a broken device: a
broken device is exactly what the doctor is for. Status marks:

    ✓ ok      ✗ fail (doctor exits non-zero)      ⚠ warning or skipped      · information

The camera check reads one frame and drops it at once (nothing is kept or shown). It is
skipped while the deployment lock is held, so the doctor never fights the running agent
for the camera. The broker check connects with the device certificate under its own
client id (``<device id>-doctor``) and a clean session, so it cannot take over the
agent's session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from agent.config import AgentConfig
from agent.errors import LfrError
from agent.provisioning.enrolment_install import check_enrolment
from agent.provisioning.enrolment_request import SERVICE_USER
from agent.runtime.health_status import THERMAL_ROOT, read_cpu_temp_c
from agent.runtime.update_lock import LockStatus, lock_path, read_status
from agent.trust.device_keys import EXCHANGE_KEY_FILE, SIGNING_KEY_FILE
from agent.trust.system_clock import Clock, ClockSync, SystemClock
from agent.vision.model_store import resolve_configured_models


class Status(Enum):
    OK = "✓"
    FAIL = "✗"
    WARN = "⚠"
    INFO = "·"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAIL

    def line(self) -> str:
        text = f"{self.status.value} {self.name:11} {self.detail}"
        if self.hint and self.status in (Status.FAIL, Status.WARN):
            text += f"\n    fix: {self.hint}"
        return text

    def to_dict(self) -> dict[str, str]:
        return {
            "check": self.name,
            "status": self.status.name.lower(),
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclass
class DoctorOptions:
    """What the checks read from the system; tests point these at their own set-up."""

    clock: Clock = field(default_factory=SystemClock)
    broker_timeout_s: float = 5.0
    thermal_root: Path = THERMAL_ROOT
    systemd_dir: Path = Path("/run/systemd/system")
    systemctl: str = "systemctl"
    service_user: str = SERVICE_USER


def _fail(name: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, hint)


# ---- individual checks ------------------------------------------------------------------
def check_update_lock(cfg: AgentConfig) -> tuple[CheckResult, LockStatus | None]:
    try:
        status = read_status(lock_path(cfg.paths.runtime_dir))
    except LfrError as exc:
        return _fail("update lock", str(exc), "systemd-tmpfiles --create lfr-agent.conf"), None
    return CheckResult("update lock", Status.INFO, status.describe()), status


def check_camera(cfg: AgentConfig, lock: LockStatus | None) -> CheckResult:
    from agent.camera.factory import make_source

    if lock is not None and lock.held:
        return CheckResult(
            "camera",
            Status.WARN,
            "not opened: a deployment is live (the agent is using the camera)",
            "run the doctor again after the deployment has ended",
        )
    hint = {
        "picamera2": "check the ribbon cable and 'rpicam-hello --list-cameras'",
        "opencv": f"check camera.device ({cfg.camera.device or 'unset'}) and 'v4l2-ctl --list-devices'",
        "replay": f"check camera.device ({cfg.camera.device or 'unset'}) exists",
    }[cfg.camera.source]
    try:
        source = make_source(cfg.camera)
    except LfrError as exc:
        return _fail("camera", str(exc), hint)
    except ImportError as exc:
        return _fail("camera", f"{cfg.camera.source}: cannot load its library ({exc})", hint)
    try:
        source.open()
        frame = source.read()
        if frame is None:
            return _fail("camera", f"{source.describe()}: opened but gave no frame", hint)
        h, w = frame.image.shape[:2]
        del frame  # one test frame, dropped at once
        return CheckResult(
            "camera", Status.OK, f"{source.describe()} opened, one {w}×{h} frame read"
        )
    except LfrError as exc:
        return _fail("camera", str(exc), hint)
    except ImportError as exc:
        return _fail("camera", f"{cfg.camera.source}: cannot load its library ({exc})", hint)
    finally:
        source.close()


def check_models(cfg: AgentConfig) -> CheckResult:
    try:
        models = resolve_configured_models(cfg)
    except LfrError as exc:
        return _fail(
            "models", str(exc), "sudo lfr-agent models install, then lfr-agent models verify"
        )
    ids = ", ".join(m.model_id for m in models.values())
    return CheckResult("models", Status.OK, f"verified by SHA-256: {ids}")


def _owner_ok(path: Path, uid: int) -> bool:
    return path.stat().st_uid == uid


def check_keys(cfg: AgentConfig, service_user: str = SERVICE_USER) -> CheckResult:
    keys_dir = cfg.paths.keys_dir
    private = [keys_dir / SIGNING_KEY_FILE, keys_dir / EXCHANGE_KEY_FILE, cfg.mqtt.key_file]
    try:
        uid = pwd.getpwnam(service_user).pw_uid
        owner_hint = f"sudo chown -R {service_user}:{service_user} {keys_dir}"
    except KeyError:
        uid = os.geteuid()  # no service user here: the keys belong to whoever runs the agent
        owner_hint = f"chown -R $(id -un) {keys_dir}"
    if not keys_dir.is_dir():
        return _fail("keys", f"{keys_dir}: missing", "lfr-agent enrol request --id ID --out REQ")
    problems, hints = [], []
    dir_mode = keys_dir.stat().st_mode & 0o777
    if dir_mode & 0o077:
        problems.append(f"{keys_dir} mode {dir_mode:04o}")
        hints.append(f"chmod 700 {keys_dir}")
    for p in private:
        if not p.exists():
            problems.append(f"{p.name} missing")
            hints.append("lfr-agent enrol request --id ID --out REQ (makes missing keys)")
            continue
        mode = p.stat().st_mode & 0o777
        if mode & 0o077:
            problems.append(f"{p.name} mode {mode:04o} (want 0600)")
            hints.append(f"chmod 600 {p}")
        if not _owner_ok(p, uid):
            problems.append(f"{p.name} not owned by uid {uid}")
            hints.append(owner_hint)
    if problems:
        return _fail("keys", "; ".join(problems), "; ".join(dict.fromkeys(hints)))
    return CheckResult("keys", Status.OK, f"{len(private)} private keys 0600 in {keys_dir} (0700)")


def check_enrolment_state(cfg: AgentConfig, clock: Clock | None = None) -> CheckResult:
    clock = clock or SystemClock()
    problems = check_enrolment(
        cfg.paths.keys_dir,
        cfg.device.id,
        cfg.mqtt.ca_file,
        cfg.mqtt.cert_file,
        cfg.mqtt.key_file,
        now=clock.wall(),
        clock_synchronised=clock.sync_state() is ClockSync.SYNCHRONISED,
    )
    if problems:
        return _fail(
            "enrolment",
            "; ".join(problems),
            "lfr-agent enrol request, approval at the hub, then lfr-agent enrol complete BUNDLE",
        )
    return CheckResult(
        "enrolment", Status.OK, f"{cfg.device.id}: certificate, CA and hub trust consistent"
    )


def check_clock(clock: Clock) -> CheckResult:
    state = clock.sync_state()
    if state is ClockSync.SYNCHRONISED:
        return CheckResult("clock", Status.OK, "synchronised")
    return _fail(
        "clock",
        f"{state.value}: activations are refused until the clock is synchronised",
        "check network time: 'timedatectl status'; 'systemctl restart systemd-timesyncd'",
    )


def check_broker(cfg: AgentConfig, timeout_s: float = 5.0) -> CheckResult:
    """A real mutual-TLS handshake with the device certificate, and no MQTT session.

    The broker makes a certificate's name the client id, so a second MQTT connection
    with this certificate would take the running agent's session over (and a clean start
    would drop what the broker holds for it). The broker checks the certificate (CA,
    validity, revocation list) during the handshake; under TLS 1.3 its refusal arrives
    as the first record after it, so the check reads briefly before calling it accepted.
    """
    m = cfg.mqtt
    where = f"{m.host}:{m.port}"
    hint = f"check the network to {where}, that the broker runs, and 'lfr-agent enrol status'"
    for p in (m.ca_file, m.cert_file, m.key_file):
        if not p.is_file():
            return _fail("broker", f"{p}: missing", "lfr-agent enrol complete BUNDLE")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(m.ca_file))
        ctx.load_cert_chain(str(m.cert_file), str(m.key_file))
    except (ssl.SSLError, OSError) as exc:
        return _fail("broker", f"cannot load the TLS files ({exc})", "lfr-agent enrol status")
    started = time.monotonic()
    try:
        with (
            socket.create_connection((m.host, m.port), timeout=timeout_s) as raw,
            ctx.wrap_socket(raw, server_hostname=m.host) as tls,
        ):
            tls.settimeout(min(1.0, timeout_s))
            try:
                closed = tls.recv(1) == b""
            except TimeoutError:
                closed = False  # the broker waits for a CONNECT: it accepted the certificate
            if closed:
                return _fail("broker", f"{where}: connection closed by the broker", hint)
    except ssl.SSLCertVerificationError as exc:
        return _fail(
            "broker", f"{where}: broker certificate not trusted ({exc.verify_message})", hint
        )
    except ssl.SSLError as exc:
        refused = exc.reason or str(exc)
        return _fail("broker", f"{where}: TLS refused ({refused})", hint)
    except OSError as exc:
        return _fail("broker", f"{where}: {exc.strerror or exc}", hint)
    ms = (time.monotonic() - started) * 1000
    return CheckResult(
        "broker", Status.OK, f"{where}: mTLS handshake with the device certificate in {ms:.0f} ms"
    )


def check_disk(cfg: AgentConfig) -> CheckResult:
    state = cfg.paths.state_dir
    probe = state
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return _fail("disk", f"{state}: {exc.strerror}", "check the SD card is mounted read-write")
    need = cfg.health.disk_free_alarm_mb * 1024 * 1024
    text = f"{free / 2**20:.0f} MB free where {state} lives (alarm below {cfg.health.disk_free_alarm_mb} MB)"
    if free < need:
        return _fail("disk", text, "free space: 'journalctl --vacuum-size=50M', remove old files")
    return CheckResult("disk", Status.OK, text)


def check_temperature(cfg: AgentConfig, thermal_root: Path = THERMAL_ROOT) -> CheckResult:
    try:
        temp = read_cpu_temp_c(thermal_root)
    except OSError as exc:
        return CheckResult("temperature", Status.WARN, f"cannot read ({exc.strerror})")
    if temp is None:
        return CheckResult("temperature", Status.INFO, "no CPU temperature sensor on this board")
    limit = cfg.health.cpu_temp_alarm_c
    if temp >= limit:
        return CheckResult(
            "temperature",
            Status.WARN,
            f"CPU {temp:.1f} °C (alarm at {limit:g} °C): the board will slow down",
            "fit a heat sink or fan, shade the enclosure, check the vents",
        )
    return CheckResult("temperature", Status.OK, f"CPU {temp:.1f} °C")


def check_unit(options: DoctorOptions) -> CheckResult:
    if not options.systemd_dir.is_dir():
        return CheckResult(
            "service", Status.WARN, "not under systemd: cannot check lfr-agent.service", ""
        )
    try:
        res = subprocess.run(
            [options.systemctl, "is-enabled", "lfr-agent.service"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult("service", Status.WARN, f"systemctl failed ({exc})")
    state = res.stdout.strip() or res.stderr.strip()[:80]
    if res.returncode == 0 and state == "enabled":
        return CheckResult("service", Status.OK, "lfr-agent.service enabled")
    return _fail(
        "service",
        f"lfr-agent.service is {state or 'unknown'}",
        "sudo systemctl enable --now lfr-agent",
    )


def run_doctor(
    cfg: AgentConfig,
    options: DoctorOptions | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run every check in field order; ``on_result`` sees each as soon as it is known."""
    o = options or DoctorOptions()
    results: list[CheckResult] = []

    def add(name: str, check: Callable[[], CheckResult]) -> None:
        try:
            r = check()
        except PermissionError as exc:
            # Typically the doctor run without sudo: the key folder is the agent's alone.
            r = _fail(
                name, f"{exc.filename}: permission denied", "run it as root: sudo lfr-agent doctor"
            )
        except (OSError, LfrError) as exc:
            r = _fail(name, str(exc), "see the message; run 'lfr-agent doctor' again after fixing")
        results.append(r)
        if on_result is not None:
            on_result(r)

    lock_result, lock = check_update_lock(cfg)
    add("camera", lambda: check_camera(cfg, lock))
    add("models", lambda: check_models(cfg))
    add("keys", lambda: check_keys(cfg, o.service_user))
    add("enrolment", lambda: check_enrolment_state(cfg, o.clock))
    add("clock", lambda: check_clock(o.clock))
    add("broker", lambda: check_broker(cfg, o.broker_timeout_s))
    add("disk", lambda: check_disk(cfg))
    add("temperature", lambda: check_temperature(cfg, o.thermal_root))
    add("service", lambda: check_unit(o))
    add("update lock", lambda: lock_result)
    return results
