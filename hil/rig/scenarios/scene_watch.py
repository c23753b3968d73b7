"""One deployment watching the scene for ``feed.passes`` passes, and every alert it raised
matched against the scene's ground truth. Shared by the alert latency and detection
quality scenarios (run once, read by both).

Scene time of an alert: the replay shows frame *i* of pass *k* at
``t_open + (k * n + i) / fps`` (the replay keeps real time and skips late frames), where
``t_open`` is the rig's scene origin: the device's ``gate.opened`` audit time for a replay,
the start of the first full loop on the monitor after it for a real camera. An alert is true when its
watchlist entry's identity is in the picture (truth) within ``FRAME_SLACK`` frames of the
alert's ``first_seen``; otherwise (a passer-by matched, or an enrolled person who is not
in the scene) it is false.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hil.rig.scenarios.scenario_support import RigDriver, wait_event, wait_for

FRAME_SLACK = 3
TAIL_S = 4.0  # after the last pass, time for the last decisions to reach the hub


@dataclass
class AlertTruth:
    alert_id: str
    identity: str
    scene_pass: int
    scene_frame: int
    true: bool
    latency_s: float | None = None  # from the identity's first appearance in that pass
    latency_full_s: float | None = None  # from its first fully visible frame in that pass


@dataclass
class SceneWatch:
    deployment_id: str
    t_open: float
    t_stop: float
    full_passes: int
    frames_per_pass: int
    fps: float
    alerts: list[AlertTruth] = field(default_factory=list)
    present_watched: list[str] = field(default_factory=list)
    alerted: set[tuple[str, int]] = field(default_factory=set)

    @property
    def observed_s(self) -> float:
        return self.full_passes * self.frames_per_pass / self.fps


_CACHE: dict[int, SceneWatch] = {}


def watch_scene(rig: RigDriver) -> SceneWatch:
    key = id(rig)
    if key not in _CACHE:
        _CACHE[key] = _watch(rig)
    return _CACHE[key]


def _watch(rig: RigDriver) -> SceneWatch:
    truth = rig.truth
    fps = truth.spec.fps
    n = len(truth.frames)
    passes = rig.desc.feed.passes
    pass_s = n / fps
    dep = rig.new_deployment("scene")
    rig.activate(
        dep, rig.load_watchlist(dep), int(passes * pass_s + 120), int(passes * pass_s + 120)
    )
    opened = wait_event(rig, dep, "gate.opened", 30).t
    t_open = rig.scene_origin(opened)
    time.sleep(max(0.0, opened + passes * pass_s + TAIL_S - time.time()))
    t_stop = rig.stop_deployment(dep, "rig: scene watched")
    wait_event(rig, dep, "deployment.ended", 30)
    wait_for("the outbox to drain", lambda: not rig.outbox_entries(), 60)
    sealed = {
        str(e.fields["alert_id"])
        for e in rig.audit()
        if e.event == "alert.sealed" and e.fields.get("deployment_id") == dep
    }
    wait_for(
        "every sealed alert at the hub",
        lambda: sealed <= {a.alert_id for a in rig.stored_alerts()},
        60,
    )
    full_passes = min(passes, int((t_stop - t_open) / pass_s))
    watch = SceneWatch(dep, t_open, t_stop, full_passes, n, fps)
    watch.present_watched = [
        ident
        for ident in rig.desc.feed.watched
        if ident in truth.identities and truth.identities[ident].first_frame is not None
    ]
    rows = sorted(
        (a for a in rig.stored_alerts() if a.deployment_id == dep), key=lambda a: a.received_at
    )
    for row in rows:
        identity = rig.ref_identity.get(row.watchlist_entry, "?")
        pos = (row.first_seen - t_open) * fps
        k, frame = int(pos // n), int(pos % n)
        lo, hi = max(0, frame - FRAME_SLACK), min(n - 1, frame + FRAME_SLACK)
        present = any(f.identity == identity for fr in truth.frames[lo : hi + 1] for f in fr.faces)
        at = AlertTruth(row.alert_id, identity, k, frame, present)
        ident = truth.identities.get(identity)
        first = (identity, k) not in watch.alerted
        if present and ident is not None and first and 0 <= k < full_passes:
            watch.alerted.add((identity, k))
            if ident.first_frame is not None:
                appear = t_open + (k * n + ident.first_frame) / fps
                at.latency_s = row.received_at - appear
            if ident.first_full_frame is not None:
                full = t_open + (k * n + ident.first_full_frame) / fps
                at.latency_full_s = row.received_at - full
        watch.alerts.append(at)
    return watch
