"""lfr-agent camera probe: open the configured source, read a few frames, close it.

For a technician checking the camera outside a deployment; it never writes a frame.
"""

from __future__ import annotations

import argparse
import time

from agent.camera.factory import make_source
from agent.cli.common import add_config_arg, load_args_config
from agent.errors import CameraError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("camera", help="probe the configured camera (reads frames, stores nothing)")
    csub = p.add_subparsers(dest="camera_command", metavar="ACTION", required=True)
    probe = csub.add_parser(
        "probe", help="open the camera, read N frames, report size and rate, close"
    )
    probe.add_argument("--frames", type=int, default=30, help="frames to read (default 30)")
    add_config_arg(probe)
    probe.set_defaults(handler=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    if args.frames < 1:
        raise CameraError("camera probe: --frames must be at least 1")
    cfg = load_args_config(args)
    source = make_source(cfg.camera)
    source.open()
    try:
        t0 = time.monotonic()
        got = 0
        shape = None
        while got < args.frames:
            frame = source.read()
            if frame is None:
                break
            got += 1
            shape = frame.image.shape
        elapsed = time.monotonic() - t0
    finally:
        source.close()
    if not got or shape is None:
        raise CameraError(f"camera probe: {source.describe()} gave no frames")
    fps = got / elapsed if elapsed > 0 else float("inf")
    print(
        f"✓ {source.describe()}: {got} frames of {shape[1]}x{shape[0]} at {fps:.1f} fps; camera closed"
    )
    return 0
