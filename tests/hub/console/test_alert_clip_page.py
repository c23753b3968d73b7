"""The alert page and its clip: a clip the hub stored complete is offered as an HTML5
video served as video/mp4 (only by the alert's row id, never cached, the CSP allowing
media from the console itself); a clip reported missing shows the camera's reason,
escaped; no clip yet says so; neither serves any video. Starlette's TestClient against
the real app and a real SQLite hub database holding a real H.264 clip received through
the media receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hub.console.test_route_roles import KEYS, Console
from support.alert_factory import AlertKeys
from support.hub_console import make_hub

from agent.evidence.video_encoder import encode_frames
from agent.hub.intake.media_receiver import MediaReceiver
from agent.hub.store.media_store import MediaStore
from agent.protocol.media_transfer import chunk_count, chunk_slice, encode_chunk
from agent.protocol.topics import clip_topic
from agent.trust.sealed_media import SealedMedia, missing_clip_notice, seal_media
from agent.trust.signed_document import key_id

DEV = "lfr-test-01"


def clip_chunks(s: SealedMedia) -> list[bytes]:
    n = chunk_count(len(s.box))
    return [
        encode_chunk(s.manifest_bytes, i, n, s.box[slice(*chunk_slice(len(s.box), i))])
        for i in range(n)
    ]


def sealed_clip(
    alert_id: str, deployment: str, frames: int = 20, keys: AlertKeys = KEYS
) -> tuple[SealedMedia, bytes]:
    """A real H.264/MP4 clip (a moving bar, 10 fps) sealed as the camera seals it."""
    images = []
    for i in range(frames):
        img = np.full((180, 320, 3), 40, np.uint8)
        img[:, (i * 15) % 300 : (i * 15) % 300 + 20] = 220
        images.append(img)
    video = encode_frames(images, 10, "libx264")
    sealed = seal_media(
        "clip", video.mp4, video.info, device=DEV, deployment=deployment, alert_id=alert_id,
        start=time.time() - frames / 10, end=time.time(), device_key=keys.device, hub_key=keys.hub.public_key(),
    )  # fmt: skip
    return sealed, video.mp4


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    c = Console(make_hub(tmp_path))
    yield c
    c.close()


def test_the_alert_page_plays_a_complete_clip_and_explains_a_missing_one(
    console: Console,
) -> None:
    media = MediaStore(console.db)
    rx = MediaReceiver(console.store, media, KEYS.hub, None)
    with_clip, missing, none_yet = (console.store_alert(DEV, n) for n in (1, 2, 3))
    alerts = {r.row_id: r for r in console.store.list_alerts()}
    clip, mp4 = sealed_clip(alerts[with_clip].alert_id, alerts[with_clip].deployment_id)
    for payload in clip_chunks(clip):
        assert rx.receive(clip_topic(DEV), payload).outcome in ("staged", "stored")
    _, notice = missing_clip_notice(
        device=DEV,
        deployment=alerts[missing].deployment_id,
        alert_id=alerts[missing].alert_id,
        reason="the camera closed <b>before</b> any frame",
        device_key=KEYS.device,
        hub_key_id=key_id(KEYS.hub.public_key()),
        at=2.0,
    )
    assert rx.receive(clip_topic(DEV), encode_chunk(notice, 0, 1, b"")).outcome == "noted"

    client, _ = console.login("aud")  # an auditor may watch it too
    page = client.get(f"/alerts/{with_clip}").text
    assert (
        f'<video controls muted playsinline preload="metadata" width="320" height="180" src="/alerts/{with_clip}/clip.mp4">'
        in page
    )
    served = client.get(f"/alerts/{with_clip}/clip.mp4")
    assert served.status_code == 200 and served.content == mp4
    assert served.headers["content-type"] == "video/mp4"
    assert served.headers["cache-control"] == "no-store"
    assert "media-src 'self'" in served.headers["content-security-policy"]

    page = client.get(f"/alerts/{missing}").text
    assert "<video" not in page
    assert "Clip missing: the camera closed &lt;b&gt;before&lt;/b&gt; any frame" in page
    assert client.get(f"/alerts/{missing}/clip.mp4").status_code == 404

    page = client.get(f"/alerts/{none_yet}").text
    assert "<video" not in page and "No clip received yet." in page
    assert client.get(f"/alerts/{none_yet}/clip.mp4").status_code == 404
    assert client.get("/alerts/999999/clip.mp4").status_code == 404

    # Purged with its alert: the page and the video are gone.
    console.store.purge(0.0)
    assert client.get(f"/alerts/{with_clip}/clip.mp4").status_code == 404
