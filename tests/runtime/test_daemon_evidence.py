"""Clips and CCTV recording with the real agent process, a real mosquitto (shipped config,
mTLS, per-client broker rules) and the hub's receivers: the clip of an alert arrives after the alert,
complete and playable; recording runs only when the signed activation says so, and its
segments reach the hub only on a signed request, decrypt only with the evidence key, and
play. The camera is a replay of a generated street scene; nothing is mocked.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import pytest
from runtime.daemon_world import (
    DEPLOYMENT,
    Hub,
    NotifyListener,
    audit_entries,
    wait_for,
    watchlist_for,
)

from agent.hub.intake.media_receiver import HubMediaWorker, MediaReceipt, MediaReceiver
from agent.hub.intake.report_receiver import ReportReceiver
from agent.hub.keys.pki import hub_identity
from agent.hub.store.media_store import ClipRow, MediaStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.topics import ALL_EVENTS, evidence_request_topic
from agent.transport.mqtt_link import MqttLink
from agent.trust.evidence_request import sign_evidence_request
from agent.trust.sealed_media import open_manifest, open_media
from hil.virtual_site import SUPERVISOR, VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _frames(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4)) as c:
        return sum(1 for _ in c.decode(video=0))


class MediaHub:
    """The hub's media side as ``lfr-hub alerts watch --evidence-key`` runs it."""

    def __init__(self, site: VirtualSite, hub: Hub, evidence: bool = True) -> None:
        self.media = MediaStore(hub.store.database)
        self.hub = hub
        self.device_id = site.device_id
        self.receipts: list[MediaReceipt] = []
        # The intake role only, as `lfr-hub broker grant --role intake` gives it.
        self.link = MqttLink(site.broker.client_settings(hub_identity("media"), roles=("intake",)))
        HubMediaWorker(
            self.link,
            MediaReceiver(
                hub.store,
                self.media,
                site.hub.alert_private_key(),
                site.hub.evidence_private_key() if evidence else None,
            ),
            on_receipt=self.receipts.append,
        )
        self.reports: list[dict[str, object]] = []
        self.report_store = DeploymentReportStore(hub.store.database)
        self.link.subscribe(
            ALL_EVENTS,
            ReportReceiver(
                self.report_store,
                hub.store.device_key,
                self.reports.append,
                hub_key=site.hub.alert_private_key(),
                acknowledge=self.link.publish,
            ).handle,
        )
        # Activations and watchlists go as `lfr-hub publish` sends them: the control role.
        self.control = MqttLink(
            site.broker.client_settings(hub_identity("publish"), roles=("control",))
        )
        self.link.start()
        self.control.start()
        assert self.link.wait_connected(10) and self.control.wait_connected(10)

    def clip(self, alert_id: str, with_video: bool = True) -> ClipRow | None:
        """The clip of one of this camera's alerts (None until it arrived)."""
        row = self.hub.store.get(alert_id, device_id=self.device_id)
        return self.media.clip(row.row_id, with_video=with_video)

    def outcomes(self, kind: str) -> list[str]:
        return [r.outcome for r in list(self.receipts) if r.manifest and r.manifest.kind == kind]

    def stop(self) -> None:
        self.link.stop()
        self.control.stop()
        self.report_store.close()


def test_each_alert_gets_its_clip_after_it_complete_and_playable(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    hub = Hub.start(site)
    media = MediaHub(site, hub)
    site.write_device_config(scene, fps=15, loop=True)
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    try:
        wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
        site.send_watchlist(media.control, bundle)
        wait_for(
            "watchlist stored",
            lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
        )
        site.send_control(
            media.control,
            site.issuer().activation(
                site.device_id, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 0001 Test"
            ),
        )
        wait_for("an alert at the hub", lambda: bool(hub.stored_ids()))
        alert_id = sorted(hub.stored_ids())[0]
        wait_for("its clip at the hub", lambda: media.clip(alert_id) is not None, 120)
        site.send_control(media.control, site.issuer().stop(site.device_id, DEPLOYMENT, "done"))
        wait_for("the report", lambda: bool(media.reports))
        wait_for(
            "every clip delivered",
            lambda: (
                not list((site.state_dir / "clips").glob("*.media"))
                and not list((site.state_dir / "clips").glob("*.expect"))
            ),
            120,
        )
    finally:
        code = agent.stop()
        notify.close()
    assert code == 0, agent.log_text()[-3000:]
    clip = media.clip(alert_id)
    assert clip is not None and clip.state == "complete" and clip.mp4 is not None
    assert _frames(clip.mp4) == clip.frames >= 10  # pre-roll + post-roll at 10 fps
    alert = hub.store.get(alert_id)
    assert clip.start <= alert.decided_at + 0.5 <= clip.end + 1.0
    # Every stored alert has exactly one clip; none was stored twice.
    stored = [r.manifest.alert_id for r in media.receipts if r.outcome == "stored" and r.manifest]
    assert sorted(stored) == sorted(set(stored)) and set(stored) == hub.stored_ids()
    report = media.reports[0]
    assert report["recording"] is False and report["recording_segments"] == 0
    # Nothing of the video was ever on the device's disk in the clear.
    for path in site.state_dir.rglob("*"):
        if path.is_file():
            assert b"ftypisom" not in path.read_bytes(), path
    # Purging the alert at the hub purges its clip.
    row_id = hub.store.get(alert_id, device_id=site.device_id).row_id
    hub.store.purge(0.0)
    assert media.media.clip(row_id) is None
    media.stop()
    hub.stop()


def test_recording_on_request_decrypts_only_at_the_hub_and_plays(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path, tmp_path: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    hub = Hub.start(site)
    media = MediaHub(site, hub)
    site.write_device_config(
        scene, fps=15, loop=True, recording="segment_s = 5.0\nwidth = 640\nreserve_mb = 1"
    )
    notify = NotifyListener(tmp_path / "notify.sock")
    agent = site.start_device({"NOTIFY_SOCKET": str(notify.path)})
    try:
        wait_for("READY=1", lambda: notify.seen("READY=1"), 120)
        site.send_watchlist(media.control, bundle)
        wait_for(
            "watchlist stored",
            lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
        )
        t0 = int(time.time())
        site.send_control(
            media.control,
            site.issuer().activation(
                site.device_id,
                DEPLOYMENT,
                3600,
                600,
                bundle.watchlist_hash,
                0.5,
                "PS 0001 Test",
                recording=True,
            ),
        )
        wait_for(
            "three sealed segments on the device",
            lambda: len(list((site.state_dir / "recordings").glob("*.seg"))) >= 3,
            120,
        )
        site.send_control(media.control, site.issuer().stop(site.device_id, DEPLOYMENT, "done"))
        wait_for("the report", lambda: bool(media.reports))
        on_device = sorted((site.state_dir / "recordings").glob("*.seg"))
        # Nothing is sent until the hub asks.
        time.sleep(2)
        assert not media.outcomes("segment")
        key, cert = site.hub.operator(SUPERVISOR, "")
        request = sign_evidence_request(
            device_id=site.device_id,
            start=t0 - 10,
            end=int(time.time()) + 10,
            issued_at=int(time.time()),
            signing_key=key,
            signer_certificate=cert.document,
            revocations=site.hub.revocations().document,
        )
        media.link.publish(evidence_request_topic(site.device_id), request)
        wait_for(
            "every segment at the hub",
            lambda: len(media.media.segments(site.device_id)) == len(on_device),
            120,
        )
    finally:
        code = agent.stop()
        notify.close()
    assert code == 0, agent.log_text()[-3000:]
    report = media.reports[0]
    assert report["recording"] is True
    assert report["recording_segments"] == len(on_device)
    assert report["recording_bytes"] == sum(p.stat().st_size for p in on_device)
    rows = media.media.segments(site.device_id)
    assert sum(r.frames for r in rows) > 0
    for row in rows:
        manifest, box = media.media.sealed_segment(row.media_id)
        m = open_manifest(
            manifest, sender=site.device_id, device_key=hub.store.device_key(site.device_id)
        )  # type: ignore[arg-type]
        # The alert key cannot open a segment; the evidence key can, and it plays.
        with pytest.raises(Exception, match="different hub segment key"):
            open_media(m, box, site.hub.alert_private_key())
        opened = open_media(m, box, site.hub.evidence_private_key())
        assert _frames(opened.mp4) == opened.info.frames == row.frames
    events = [e["event"] for e in _audit(site)]
    assert "recording.started" in events and "evidence.requested" in events
    assert events.count("evidence.segment_delivered") == len(on_device)
    started = audit_entries(site, "deployment.started")
    assert started[-1]["recording"] is True
    media.stop()
    hub.stop()


def _audit(site: VirtualSite) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in (site.state_dir / "audit.jsonl").read_text().splitlines()]
