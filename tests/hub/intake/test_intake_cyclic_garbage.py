"""The hub's intake leaves nothing for the cyclic collector.

An object in a reference cycle is freed only when the collector finds it; one that
survives the young collections (alive while the store syncs to disk, say) waits for a
full pass, and the hub's heap grows in between: the soak saw it as slow growth
(hil/README.md). Queries and statements built per alert were the source: the clip upsert's
``excluded`` alias, then the enrolled-key lookup's ``EXISTS``, asked for every alert and
clip chunk (1280 objects in this test's 40 alerts when it was built per call). Both are
now built once. This stores alerts with clips through the real receiver and
counts what the collector frees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.evidence.video_encoder import encode_frames
from hil.soak.intake_memory_probe import CyclicGarbageCounter, IntakeProbe


def test_alerts_and_clips_are_stored_without_cyclic_garbage(tmp_path: Path) -> None:
    frames = [np.random.default_rng(i).integers(0, 255, (90, 160, 3), np.uint8) for i in range(5)]
    probe = IntakeProbe(tmp_path, encode_frames(frames, 10, "libx264"))
    try:
        for _ in range(5):  # caches (compiled statements, codecs) fill first
            probe.one_alert()
        alerts = 40
        with CyclicGarbageCounter() as cycles:
            for _ in range(alerts):
                probe.one_alert()
    finally:
        probe.store.close()
    assert probe.seq == 45
    # Under one object per alert: the collector may free something another test left
    # running makes meanwhile, but the intake itself must make nothing.
    assert cycles.collected < alerts, f"{cycles.collected / alerts:.1f} objects/alert"


def test_the_counter_sees_a_cycle() -> None:
    with CyclicGarbageCounter() as cycles:
        a: list[object] = []
        a.append(a)
        del a
    assert cycles.collected >= 1
