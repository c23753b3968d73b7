"""lfr-hub alerts show|clip and evidence list|export on a hub database holding a real
clip and a real sealed segment (received through the media receiver)."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from support.alert_factory import AlertKeys, make_content

from agent.cli.hub_main import main as hub_main
from agent.evidence.video_encoder import encode_frames
from agent.hub.intake.media_receiver import MediaReceiver
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.media_store import MediaStore
from agent.protocol.media_transfer import chunk_count, chunk_slice, encode_chunk
from agent.trust.alert_envelope import open_alert, seal_alert
from agent.trust.key_files import write_private_key
from agent.trust.sealed_media import SealedMedia, seal_media

DEV = "lfr-test-01"


def _chunks(s: SealedMedia) -> list[bytes]:
    n = chunk_count(len(s.box))
    return [
        encode_chunk(s.manifest_bytes, i, n, s.box[slice(*chunk_slice(len(s.box), i))])
        for i in range(n)
    ]


def _video() -> tuple[bytes, object]:
    frames = [np.full((180, 320, 3), 20 * i, np.uint8) for i in range(6)]
    v = encode_frames(frames, 10, "libx264")
    return v.mp4, v.info


def test_clip_and_segment_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "hub.db")
    keys = AlertKeys.generate()
    evidence = X25519PrivateKey.generate()
    store = AlertStore(db)
    store.register_device_key(DEV, keys.device.public_key())
    sealed = seal_alert(
        make_content(DEV), seq=1, device_key=keys.device, hub_key=keys.hub.public_key()
    )
    alert = open_alert(
        sealed.envelope, sender=DEV, device_key=keys.device.public_key(), hub_key=keys.hub
    )
    store.store_alert(alert)
    rx = MediaReceiver(store, MediaStore(store.database), keys.hub, evidence)
    aid = alert.header.alert_id
    assert hub_main(["alerts", "show", aid, "--db", db]) == 0
    assert "none received (yet)" in capsys.readouterr().out
    assert hub_main(["alerts", "clip", aid, "--db", db, "--out", str(tmp_path / "c.mp4")]) == 2

    mp4, info = _video()
    clip = seal_media(
        "clip", mp4, info, device=DEV, deployment=alert.header.deployment, alert_id=aid,  # type: ignore[arg-type]
        start=1.0, end=2.0, device_key=keys.device, hub_key=keys.hub.public_key(),
    )  # fmt: skip
    segment = seal_media(
        "segment", mp4, info, device=DEV, deployment=alert.header.deployment, alert_id="",  # type: ignore[arg-type]
        start=1_800_000_000.0, end=1_800_000_060.0, device_key=keys.device, hub_key=evidence.public_key(),
    )  # fmt: skip
    for p in _chunks(clip):
        assert rx.receive(f"lfr/v1/{DEV}/clip", p).outcome in ("staged", "stored")
    for p in _chunks(segment):
        assert rx.receive(f"lfr/v1/{DEV}/evidence", p).outcome in ("staged", "stored")

    assert hub_main(["alerts", "show", aid, "--db", db]) == 0
    assert "6 frames 320x180" in capsys.readouterr().out
    out = tmp_path / "clip.mp4"
    assert hub_main(["alerts", "clip", aid[:8], "--db", db, "--out", str(out)]) == 0
    assert out.read_bytes() == mp4 and stat.S_IMODE(out.stat().st_mode) == 0o600

    assert hub_main(["evidence", "list", "--db", db, "--device", DEV]) == 0
    listed = capsys.readouterr().out
    assert segment.manifest.media_id in listed and "6 frames" in listed
    key_file = tmp_path / "evidence.pem"
    write_private_key(key_file, evidence)
    seg_out = tmp_path / "segment.mp4"
    args = ["evidence", "export", segment.manifest.media_id[:10], "--db", db, "--out", str(seg_out)]
    assert hub_main([*args, "--evidence-key", str(key_file)]) == 0
    with av.open(io.BytesIO(seg_out.read_bytes())) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    # The alert key cannot export a segment: a one-line refusal, exit 1.
    wrong = tmp_path / "alert.pem"
    write_private_key(wrong, keys.hub)
    assert hub_main([*args, "--evidence-key", str(wrong)]) == 1
    assert "different hub segment key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        hub_main(["evidence", "list", "--db", db, "--from", "not-a-time"])
    assert exit_info.value.code == 2
    assert "give Unix seconds or a time like" in capsys.readouterr().err
    store.close()
