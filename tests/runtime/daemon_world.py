"""Helpers shared by the daemon tests: waiting, a NOTIFY_SOCKET stand-in, the watchlist
and activation a deployment needs, and the hub side (receiver, acks, reports).

The fixtures ``site`` and ``scene`` are in ``tests/runtime/conftest.py``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.store.alert_store import AlertStore
from agent.matching.watchlist_bundle import SealedBundle
from agent.transport.mqtt_link import MqttLink
from agent.vision.model_store import resolve_models
from agent.vision.still_photo import StillPhotoAnalyser
from hil.virtual_site import VirtualSite

WATCHED = "deepface_id01"
PASSER_BY = "deepface_id10"
DEPLOYMENT = "dep-e2e-001"


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def lines(self) -> list[str]:
        return [line for m in list(self.messages) for line in m.splitlines()]

    def seen(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines())

    def count(self, line: str) -> int:
        return self.lines().count(line)


def watchlist_for(site: VirtualSite, shared_data: Path, models_dir: Path) -> SealedBundle:
    models = resolve_models(models_dir)
    image = cv2.imread(str(shared_data / "faces" / WATCHED / "1.jpg"))
    assert image is not None
    embedding = StillPhotoAnalyser(models).embed_central(image)
    assert embedding is not None
    return site.build_watchlist(
        ["subject-0001"],
        np.stack([embedding]),
        DEPLOYMENT,
        models["embedder"].model_id,
        models["embedder"].sha256,
    )


def activation(site: VirtualSite, bundle: SealedBundle, duration_s: int = 3600) -> bytes:
    return site.issuer().activation(
        site.device_id, DEPLOYMENT, duration_s, 600, bundle.watchlist_hash, 0.5, "PS 0001 Test"
    )


def deliver_and_activate(site: VirtualSite, control: MqttLink, bundle: SealedBundle) -> None:
    """The hub sends the watchlist, waits until the device holds it, then activates."""
    site.send_watchlist(control, bundle)
    wait_for(
        "watchlist stored",
        lambda: any((site.state_dir / "watchlists").glob(f"{bundle.watchlist_hash}*")),
    )
    site.send_control(control, activation(site, bundle))


@dataclass
class Hub:
    """The hub's alert side: stores alerts and acknowledges them (``lfr-hub alerts watch``)."""

    store: AlertStore
    worker: HubAlertWorker
    receipts: list[Receipt] = field(default_factory=list)

    @classmethod
    def start(cls, site: VirtualSite, name: str = "main") -> Hub:
        store = AlertStore(site.hub_db)
        receipts: list[Receipt] = []
        worker = HubAlertWorker(
            site.hub_link(name),
            AlertReceiver(store, site.hub.alert_private_key()),
            on_receipt=receipts.append,
        )
        worker.start()
        return cls(store, worker, receipts)

    def stored_ids(self, deployment: str = DEPLOYMENT) -> set[str]:
        return {
            r.alert.header.alert_id
            for r in list(self.receipts)
            if r.outcome == "stored" and r.alert and r.alert.content.deployment_id == deployment
        }

    def stop(self) -> None:
        self.worker.stop()
        self.store.close()


def audit_entries(site: VirtualSite, event: str) -> list[dict[str, Any]]:
    lines = (site.state_dir / "audit.jsonl").read_text().splitlines()
    return [e["fields"] for e in map(json.loads, lines) if e["event"] == event]
