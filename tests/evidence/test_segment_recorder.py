"""The recorder: frames become sealed segments that only the evidence key opens and that
decode as video; a full disk stops recording (audited) and nothing else."""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.camera.frame_source import Frame
from agent.config import RecordingSection
from agent.evidence import sealed_media_file
from agent.evidence.segment_recorder import SegmentRecorder
from agent.evidence.segment_ring import SegmentRing
from agent.evidence.video_encoder import EncodedVideo
from agent.trust.sealed_media import SealedMedia, open_manifest, open_media, seal_media

DEV = "lfr-test-01"
DEV_KEY = Ed25519PrivateKey.generate()
EVIDENCE = X25519PrivateKey.generate()


def _seal(video: EncodedVideo, deployment: str, start: float, end: float) -> SealedMedia:
    return seal_media(
        "segment",
        video.mp4,
        video.info,
        device=DEV,
        deployment=deployment,
        alert_id="",
        start=start,
        end=end,
        device_key=DEV_KEY,
        hub_key=EVIDENCE.public_key(),
    )


def _recorder(tmp: Path, free: int = 10**12):  # type: ignore[no-untyped-def]
    audit: list[tuple[str, dict[str, object]]] = []
    ring = SegmentRing(
        tmp / "recordings",
        max_bytes=10**8,
        reserve_bytes=10**6,
        retention_s=31 * 86400,
        audit=lambda e, f: audit.append((e, f)),
        free_bytes=lambda _p: free,
    )
    section = RecordingSection(segment_s=5.0, fps=10, width=320)
    rec = SegmentRecorder(
        section, ring, _seal, audit=lambda e, f: audit.append((e, f)), codec="libx264"
    )
    return rec, ring, audit


def _feed(rec: SegmentRecorder, seconds: float, fps: int = 30) -> None:
    t0 = time.monotonic()
    for i in range(int(seconds * fps)):
        img = np.zeros((360, 640, 3), np.uint8)
        img[:, (i * 5) % 640 :] = 200
        rec.offer(Frame(i, t0 + i / fps, img))
        if i % 8 == 0:
            time.sleep(0.01)  # let the recorder keep up, as a real camera's pace would


def test_recorded_segments_decrypt_only_with_the_evidence_key_and_play(tmp_path: Path) -> None:
    rec, ring, audit = _recorder(tmp_path)
    rec.start()
    try:
        rec.begin("dep-1")
        _feed(rec, 12)
        totals = rec.end("stopped")
    finally:
        rec.stop()
    assert totals.segments == len(ring) >= 2 and totals.bytes == ring.size_bytes
    assert [e for e, _ in audit].count("recording.segment_sealed") == totals.segments
    frames = 0
    for entry in ring.entries():
        f = sealed_media_file.read(entry.path)
        m = open_manifest(f.manifest, sender=DEV, device_key=DEV_KEY.public_key())
        opened = open_media(m, f.box, EVIDENCE)
        with av.open(io.BytesIO(opened.mp4)) as c:
            n = sum(1 for _ in c.decode(video=0))
        assert n == opened.info.frames and (opened.info.width, opened.info.height) == (320, 180)
        frames += n
    assert 100 <= frames <= 125  # 12 s at 10 fps (the hand-over may drop a few)


def test_nothing_is_recorded_unless_a_deployment_asked_for_it(tmp_path: Path) -> None:
    rec, ring, _ = _recorder(tmp_path)
    rec.start()
    try:
        _feed(rec, 2)
        time.sleep(0.2)
    finally:
        rec.stop()
    assert len(ring) == 0 and not list((tmp_path / "recordings").iterdir())


def test_a_full_disk_stops_recording_audited(tmp_path: Path) -> None:
    rec, ring, audit = _recorder(tmp_path, free=10**6 + 10)
    rec.start()
    try:
        rec.begin("dep-1")
        _feed(rec, 7)
        totals = rec.end("stopped")
    finally:
        rec.stop()
    assert totals.stopped == "disk-full" and len(ring) == 0
    stopped = [f for e, f in audit if e == "recording.stopped"]
    assert stopped and stopped[0]["reason"] == "disk-full"
