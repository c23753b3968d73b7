"""lfr-agent camera probe: open the configured source, read a few frames, close it.

For a technician checking the camera outside a deployment; it never writes a frame.
The capture gate alone opens the camera during a deployment, so the probe refuses
while one is live, and records its own use of the camera in the device audit log.
"""

from __future__ import annotations

import argparse
import sys
import time

from agent.camera.factory import make_source
from agent.camera.frame_source import FrameSource
from agent.cli.common import add_config_arg, load_args_config
from agent.config import AgentConfig
from agent.errors import CameraError, LfrError
from agent.runtime.update_lock import lock_path, read_status
from agent.trust.audit_log import AuditLog, audit_log_path, open_device_audit_log

PROBE_EVENT = "camera.probe"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("camera", help="probe the configured camera (reads frames, stores nothing)")
    csub = p.add_subparsers(dest="camera_command", metavar="ACTION", required=True)
    probe = csub.add_parser(
        "probe", help="open the camera, read N frames, report size and rate, close"
    )
    probe.add_argument("--frames", type=int, default=30, help="frames to read (default 30)")
    add_config_arg(probe)
    probe.set_defaults(handler=cmd_probe)


class DeploymentLive(LfrError):
    """The camera belongs to a live deployment; a probe would bypass the capture gate."""

    exit_code = 3


def _refuse_if_deployment_live(cfg: AgentConfig) -> None:
    status = read_status(lock_path(cfg.paths.runtime_dir))
    if status.held:
        raise DeploymentLive(
            f"camera probe: refused, the camera belongs to a live deployment ({status.describe()})"
        )


def _open_audit_log(cfg: AgentConfig) -> tuple[AuditLog | None, str]:
    """The device audit log when this device has one and its key is readable, else a reason."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.trust.device_keys import SIGNING_KEY_FILE
    from agent.trust.key_files import load_private_key

    path = audit_log_path(cfg)
    if not path.exists():
        return None, f"no audit log at {path}"
    try:
        key = load_private_key(cfg.paths.keys_dir / SIGNING_KEY_FILE, Ed25519PrivateKey)  # type: ignore[type-abstract]
        return open_device_audit_log(cfg, key), ""
    except (LfrError, OSError) as exc:
        return None, str(exc)


def cmd_probe(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise CameraError("camera probe: --frames must be at least 1")
    cfg = load_args_config(args)
    source = make_source(cfg.camera)
    _refuse_if_deployment_live(cfg)
    audit, why_not = _open_audit_log(cfg)
    try:
        got, shape, elapsed = _probe(source, args.frames, audit)
    finally:
        if audit is not None:
            audit.close()
    if not got or shape is None:
        raise CameraError(f"camera probe: {source.describe()} gave no frames")
    fps = got / elapsed if elapsed > 0 else float("inf")
    print(
        f"✓ {source.describe()}: {got} frames of {shape[1]}x{shape[0]} at {fps:.1f} fps; camera closed"
    )
    if audit is None:
        print(f"lfr-agent: note: probe not recorded in the audit log ({why_not})", file=sys.stderr)
    return 0


def _probe(
    source: FrameSource, frames: int, audit: AuditLog | None
) -> tuple[int, tuple[int, ...] | None, float]:
    """Open, read up to ``frames`` frames (dropped at once), close; audit the open and close."""
    source.open()
    got, shape, t0 = 0, None, time.monotonic()
    try:
        if audit is not None:
            audit.append(PROBE_EVENT, action="opened", source=source.describe())
        while got < frames:
            frame = source.read()
            if frame is None:
                break
            got += 1
            shape = frame.image.shape
    finally:
        source.close()
        if audit is not None:
            audit.append(PROBE_EVENT, action="closed", source=source.describe(), frames=got)
    return got, shape, time.monotonic() - t0
