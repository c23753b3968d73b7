"""A 10-minute replay deployment with CCTV recording on, with the real agent process and a
real mosquitto: the sealed segments reach the hub only on a signed request, decrypt with
the evidence key and play (PyAV decodes every frame); then the agent's wall clock is
shifted past the retention period (``hil/rig/wall_clock_shim.py``, the rig's clock jump)
and the camera deletes every segment, each deletion audited: it holds none past
retention.

The deployment lasts ``LFR_RECORDING_DEPLOYMENT_S`` seconds (default 600, the 10 minutes
of the acceptance test; a developer may shorten it locally).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import av
import pytest
from runtime.daemon_world import DEPLOYMENT, Hub, NotifyListener, wait_for, watchlist_for
from runtime.test_daemon_evidence import MediaHub

from agent.protocol.topics import evidence_request_topic
from agent.trust.evidence_request import sign_evidence_request
from agent.trust.sealed_media import open_manifest, open_media
from hil.rig import wall_clock_shim
from hil.virtual_site import SUPERVISOR, VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]

DEPLOYMENT_S = float(os.environ.get("LFR_RECORDING_DEPLOYMENT_S", "600"))
SEGMENT_S = 60.0 if DEPLOYMENT_S >= 300 else 10.0
DAY = 86400


def _audit(site: VirtualSite) -> list[dict[str, object]]:
    lines = (site.state_dir / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# The deployment alone lasts DEPLOYMENT_S: past the suite's 600 s default timeout.
@pytest.mark.timeout(int(DEPLOYMENT_S) + 900)
def test_a_recorded_deployment_arrives_on_request_plays_and_is_gone_after_retention(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    hub = Hub.start(site)
    media = MediaHub(site, hub)
    shim_dir, offset_file = wall_clock_shim.prepare(tmp_path / "clock-shim")
    site.write_device_config(
        scene, fps=15, loop=True, recording=f"segment_s = {SEGMENT_S}\nwidth = 640\nreserve_mb = 1"
    )
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device(
        {
            "NOTIFY_SOCKET": str(notify.path),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(shim_dir), os.environ.get("PYTHONPATH", "")) if p
            ),
            wall_clock_shim.ENV_VAR: str(offset_file),
        }
    )
    recordings = site.state_dir / "recordings"
    try:
        wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
        site.send_watchlist(media.control, bundle)
        wait_for(
            "watchlist stored",
            lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
        )
        t_start = int(time.time())
        site.send_control(
            media.control,
            site.issuer().activation(
                site.device_id,
                DEPLOYMENT,
                int(DEPLOYMENT_S) + 3600,
                int(DEPLOYMENT_S) + 600,
                bundle.watchlist_hash,
                0.5,
                "PS 0001 Test",
                recording=True,
            ),
        )
        time.sleep(DEPLOYMENT_S)
        site.send_control(media.control, site.issuer().stop(site.device_id, DEPLOYMENT, "done"))
        wait_for("the report", lambda: bool(media.reports))
        on_device = sorted(recordings.glob("*.seg"))
        expected = int(DEPLOYMENT_S // SEGMENT_S)
        assert expected <= len(on_device) <= expected + 2

        key, cert = site.hub.operator(SUPERVISOR, "")
        request = sign_evidence_request(
            device_id=site.device_id,
            start=t_start - 5,
            end=int(time.time()) + 5,
            issued_at=int(time.time()),
            signing_key=key,
            signer_certificate=cert.document,
            revocations=site.hub.revocations().document,
        )
        media.link.publish(evidence_request_topic(site.device_id), request)
        wait_for(
            "every segment at the hub",
            lambda: len(media.media.segments(site.device_id)) == len(on_device),
            300,
        )
        rows = media.media.segments(site.device_id)
        device_key = hub.store.device_key(site.device_id)
        assert device_key is not None
        covered = 0.0
        for row in rows:
            manifest, box = media.media.sealed_segment(row.media_id)
            m = open_manifest(manifest, sender=site.device_id, device_key=device_key)
            opened = open_media(m, box, site.hub.evidence_private_key())
            with av.open(io.BytesIO(opened.mp4)) as c:
                assert sum(1 for _ in c.decode(video=0)) == opened.info.frames > 0
            covered += m.end - m.start
        print(
            f"\n{len(rows)} segments, {sum(r.size for r in rows)} bytes sealed, "
            f"{covered:.0f} s of {DEPLOYMENT_S:.0f} s recorded and played back"
        )
        assert covered >= 0.9 * DEPLOYMENT_S - SEGMENT_S

        # Past retention by the device's own wall clock: every segment goes, audited.
        wall_clock_shim.write_offset(offset_file, 32 * DAY)
        wait_for("the ring emptied by retention", lambda: not list(recordings.glob("*.seg")), 150)
    finally:
        code = agent.stop()
        notify.close()
    assert code == 0, agent.log_text()[-3000:]
    deleted = [
        e["fields"]
        for e in _audit(site)
        if e["event"] == "recording.segment_deleted" and e["fields"]["reason"] == "retention"  # type: ignore[index]
    ]
    assert len(deleted) == len(on_device)
    report = media.reports[0]
    assert report["recording"] is True and report["recording_segments"] == len(on_device)
    media.stop()
    hub.stop()
