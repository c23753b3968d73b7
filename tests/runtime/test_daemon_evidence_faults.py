"""Clips under faults, with the real agent process and a real mosquitto: the agent is
SIGKILLed while clips are being made, and the broker is killed and restarted while a
clip is travelling in chunks. Every alert arrives once; every clip arrives complete
once (joined, hash-checked, decrypted, decoded) or is reported missing; nothing corrupt
or partial is ever stored (so never shown).
"""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path

import av
import pytest
from runtime.daemon_world import (
    DEPLOYMENT,
    Hub,
    NotifyListener,
    activation,
    audit_entries,
    wait_for,
    watchlist_for,
)
from runtime.test_daemon_evidence import MediaHub

from hil.local_broker import MosquittoBroker
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.fault]

# Large clips (full 1280-px frames, 30 fps, long post-roll) so one clip takes several
# 256 KiB chunks, and probes come back quickly.
EVIDENCE_CONFIG = {
    "clips": "width = 1280\nfps = 30\npreroll_s = 3.0\npostroll_s = 4.0",
    "outbox": "resend_after_s = 2",
}


def _clip_frames(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_sigkill_mid_clip_and_a_broker_crash_mid_transfer_never_give_a_corrupt_clip(
    site: VirtualSite,
    mqtt_broker: MosquittoBroker,
    scene: Path,
    shared_data: Path,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    hub = Hub.start(site)
    media = MediaHub(site, hub)
    site.write_device_config(scene, fps=15, loop=True, **EVIDENCE_CONFIG)
    notify = NotifyListener(tmp_path / "notify.sock")

    # 1. SIGKILL while the first alert's clip is still collecting its post-roll.
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
    site.send_watchlist(media.control, bundle)
    wait_for(
        "watchlist stored",
        lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
    )
    site.send_control(media.control, activation(site, bundle))
    wait_for(
        "a clip promised on the device",
        lambda: any((site.state_dir / "clips").glob("*.expect")),
        120,
    )
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait(30)
    killed_with = {p.stem for p in (site.state_dir / "clips").glob("*.expect")}
    assert killed_with

    # 2. Restart; kill the broker as soon as the hub holds part of a clip.
    restarted = threading.Event()

    def crash_broker_mid_transfer() -> None:
        wait_for(
            "part of a clip at the hub",
            lambda: any(r.outcome == "staged" for r in list(media.receipts)),
            180,
        )
        mqtt_broker.restart(kill=True)
        restarted.set()

    crasher = threading.Thread(target=crash_broker_mid_transfer, daemon=True)
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    try:
        # The alert outbox and the activation state survive; re-activate to make more
        # alerts (and clips) after the crash.
        wait_for("READY=1 again", lambda: notify.count("READY=1") >= 2, 120)
        crasher.start()
        site.send_control(media.control, activation(site, bundle))
        wait_for("the broker crashed mid-transfer", restarted.is_set, 200)
        wait_for(
            "every alert's clip settled (stored or reported missing)",
            lambda: (
                hub.stored_ids() and all(media.clip(a, with_video=False) for a in hub.stored_ids())
            ),
            240,
        )
        site.send_control(media.control, site.issuer().stop(site.device_id, DEPLOYMENT, "done"))
        wait_for(
            "the clip outbox empty",
            lambda: not list((site.state_dir / "clips").glob("*.media")),
            180,
        )
    finally:
        code = agent.stop()
        notify.close()
    assert code == 0, agent.log_text()[-3000:]

    stored_alerts = [r for r in hub.receipts if r.outcome == "stored" and r.alert]
    ids = [r.alert.header.alert_id for r in stored_alerts if r.alert]
    assert len(ids) == len(set(ids)), "an alert was stored twice"
    # The clips the kill interrupted are reported missing, never awaited.
    for alert_id in killed_with:
        clip = media.clip(alert_id, with_video=False)
        assert clip is not None and clip.state == "missing", alert_id
        assert "agent stopped" in clip.reason
    complete = 0
    for alert_id in set(ids):
        clip = media.clip(alert_id)
        assert clip is not None
        if clip.state == "complete":
            complete += 1
            assert clip.mp4 is not None and _clip_frames(clip.mp4) == clip.frames
    assert complete >= 1, "no clip survived the broker crash to arrive complete"
    stored_clips = [
        r.manifest.media_id for r in media.receipts if r.outcome == "stored" and r.manifest
    ]
    assert len(stored_clips) == len(set(stored_clips)), "a clip was stored twice"
    # Nothing the hub received was joined into something wrong.
    bad = [r.reason for r in media.receipts if r.outcome == "rejected"]
    assert not [b for b in bad if "does not match" in b or "decode" in b], bad
    assert audit_entries(site, "clip.missing")
    media.stop()
    hub.stop()
