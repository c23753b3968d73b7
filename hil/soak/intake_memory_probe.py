"""``python -m hil.soak.intake_memory_probe``: what the hub's intake keeps per alert.

The soak sees the hub's memory from outside. This probe drives the same intake code in
one process (no broker, no camera): each alert is sealed with a device key, opened and
stored as ``AlertReceiver`` stores it, and its evidence clip is sealed and received in
chunks by ``MediaReceiver`` (the hub decodes every clip before storing it). After a
warm-up it prints, per round, the growth of anonymous RSS (the heap the kernel sees,
C libraries' included: SQLite, the video decoder) and of the Python objects
``tracemalloc`` traces, and the objects per alert the cyclic collector had to free (an
object in a reference cycle outlives its last use until a collection finds it; those
that survive the young collections wait for the rare full ones, and the heap grows
between them). Memory kept per alert grows round after round by the same amount; a
cache filling grows by less each round and stops.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.evidence.video_encoder import EncodedVideo, encode_frames
from agent.hub.intake.media_receiver import MediaReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.media_store import MediaStore
from agent.protocol.media_transfer import chunk_count, chunk_slice, encode_chunk
from agent.trust.alert_envelope import AlertContent, open_alert, seal_alert
from agent.trust.sealed_media import seal_media
from hil.soak.process_sampler import sample_memory
from hil.soak.soak_sampler import MB

DEVICE = "lfr-probe-01"
#: A stand-in face crop: the probe measures the hub, not the camera's JPEG encoder.
CROP = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"


def sqlite_heap_mb() -> float:
    """What SQLite itself holds in this process (page caches, schema, statements): the
    library Python's sqlite3 module is linked to, asked through its own counter."""
    try:
        library = ctypes.CDLL("libsqlite3.so.0")
    except OSError:  # a Python with SQLite built in: no shared library to ask
        return float("nan")
    library.sqlite3_memory_used.restype = ctypes.c_int64
    return int(library.sqlite3_memory_used()) / MB


def anonymous_mb() -> float:
    memory = sample_memory(os.getpid())
    anon = memory[1] if memory else None
    return anon / MB if anon is not None else float("nan")


class CyclicGarbageCounter:
    """Counts the objects the cyclic collector frees while it is open (every thread's)."""

    def __init__(self) -> None:
        self.collected = 0

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            self.collected += info["collected"]

    def __enter__(self) -> CyclicGarbageCounter:
        gc.collect()  # garbage made before opening is not counted
        gc.callbacks.append(self._on_collection)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            gc.collect()  # garbage made while open and not yet found is
        finally:
            gc.callbacks.remove(self._on_collection)


class IntakeProbe:
    def __init__(self, folder: Path, clip: EncodedVideo) -> None:
        self.device, self.hub = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
        self.store = AlertStore(str(folder / "alerts.db"))
        self.store.register_device_key(DEVICE, self.device.public_key())
        self.media = MediaReceiver(self.store, MediaStore(self.store.database), self.hub)
        self.clip = clip
        self.seq = 0

    def one_alert(self) -> None:
        self.seq += 1
        now = time.time()
        content = AlertContent(
            device_id=DEVICE,
            deployment_id="dep-memory-probe",
            watchlist_entry=f"W-{self.seq % 50:04d}",
            score=0.7,
            threshold=0.6,
            model_id="probe",
            track_id=self.seq,
            first_seen=now - 1.0,
            decided_at=now,
            probe_jpeg=CROP,
            scene_jpeg=CROP[::-1],
        )
        sealed = seal_alert(
            content, seq=self.seq, device_key=self.device, hub_key=self.hub.public_key()
        )
        alert = open_alert(
            sealed.envelope, sender=DEVICE, device_key=self.device.public_key(), hub_key=self.hub
        )
        self.store.store_alert(alert)
        media = seal_media(
            "clip",
            self.clip.mp4,
            self.clip.info,
            device=DEVICE,
            deployment=alert.header.deployment,
            alert_id=alert.header.alert_id,
            start=now - 3.0,
            end=now + 3.0,
            device_key=self.device,
            hub_key=self.hub.public_key(),
        )
        n = chunk_count(len(media.box))
        for i in range(n):
            part = media.box[slice(*chunk_slice(len(media.box), i))]
            receipt = self.media.receive(
                f"lfr/v1/{DEVICE}/clip", encode_chunk(media.manifest_bytes, i, n, part)
            )
        if receipt.outcome != "stored":
            raise SystemExit(f"intake probe: clip {self.seq} not stored: {receipt.outcome}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.soak.intake_memory_probe")
    p.add_argument("--warm-up", type=int, default=100, help="alerts before the first mark")
    p.add_argument("--alerts", type=int, default=300, help="alerts per round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    if min(args.warm_up, args.alerts, args.rounds) < 1:
        print("intake probe: --warm-up, --alerts and --rounds must be at least 1", file=sys.stderr)
        return 2
    frames = [np.random.default_rng(i).integers(0, 255, (180, 320, 3), np.uint8) for i in range(20)]
    clip = encode_frames(frames, 10, "libx264")
    with tempfile.TemporaryDirectory(prefix="lfr-intake-probe-") as folder:
        probe = IntakeProbe(Path(folder), clip)
        for _ in range(args.warm_up):
            probe.one_alert()
        tracemalloc.start(10)
        # Stopped here: the probe also runs inside the test process, where a tracer left on
        # would slow every later test and count their allocations.
        try:
            gc.collect()
            base = tracemalloc.take_snapshot()
            anon0, sqlite0 = anonymous_mb(), sqlite_heap_mb()
            print(
                f"clip {len(clip.mp4)} bytes; after {args.warm_up} alerts of warm-up (pid {os.getpid()}):"
            )
            for r in range(1, args.rounds + 1):
                with CyclicGarbageCounter() as cycles:
                    for _ in range(args.alerts):
                        probe.one_alert()
                snap = tracemalloc.take_snapshot()
                traced = sum(s.size_diff for s in snap.compare_to(base, "filename")) / 1024.0
                print(
                    f"  round {r}: {probe.seq:6d} alerts stored  anonymous RSS {anonymous_mb() - anon0:+.2f} MB"
                    f"  of which SQLite {sqlite_heap_mb() - sqlite0:+.2f} MB"
                    f"  Python objects {traced:+.1f} KiB"
                    f"  cyclic garbage {cycles.collected / args.alerts:.1f} objects/alert",
                    flush=True,
                )
        finally:
            tracemalloc.stop()
        probe.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
