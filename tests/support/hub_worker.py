"""A hub alert worker for fault tests, run as its own process so it can be SIGKILLed.

    python tests/support/hub_worker.py DB HUB_KEY HOST PORT PKI_DIR RECEIPTS [CRASH_AFTER]

DB is a SQLite file or a store URL (``postgresql://…``).

It builds what ``lfr-hub alerts watch`` builds: an ``AlertStore`` opened from DB, an
``AlertReceiver`` with the hub alert key HUB_KEY, and a ``HubAlertWorker`` connected
with the hub certificate from PKI_DIR under the fixed client id ``hub-fault-1`` (so its
broker session, and the alerts queued in it, survive the process). It appends one JSON
line per received message to RECEIPTS, written after the store answered and before the
acknowledgement::

    {"pid": 123, "outcome": "stored", "topic": "...", "alert_id": "...", "reason": null}

and ``{"pid": 123, "event": "ready"}`` once connected and subscribed. With CRASH_AFTER=N
the process SIGKILLs itself right after the Nth alert it stored, before acknowledging
it: a crash between the database commit and the ack. SIGTERM stops it cleanly (exit 0).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.hub.intake.alert_receiver import AlertReceiver, HubAlertWorker, Receipt
from agent.hub.store.alert_store import AlertStore
from agent.transport.mqtt_link import MqttLink
from agent.trust.key_files import load_private_key
from hil.local_broker import HUB_CN
from support.fault_link import fault_test_settings

CLIENT_ID = "hub-fault-1"


class _RecordingReceiver(AlertReceiver):
    def __init__(self, store: AlertStore, hub_key: X25519PrivateKey, fd: int, crash_after: int):
        super().__init__(store, hub_key)
        self._fd = fd
        self._crash_after = crash_after
        self._stored_here = 0

    def receive(self, topic: str, payload: bytes) -> Receipt:
        receipt = super().receive(topic, payload)
        alert_id = receipt.alert.header.alert_id if receipt.alert is not None else None
        _record(
            self._fd,
            {
                "outcome": receipt.outcome,
                "topic": topic,
                "alert_id": alert_id,
                "reason": receipt.reason,
            },
        )
        if receipt.outcome == "stored":
            self._stored_here += 1
            if self._stored_here == self._crash_after:
                # Committed, recorded, not acknowledged: the worst moment to die.
                os.kill(os.getpid(), signal.SIGKILL)
        return receipt


def _record(fd: int, fields: dict[str, object]) -> None:
    # One write() per line on an O_APPEND descriptor: a SIGKILL leaves whole lines only.
    os.write(fd, (json.dumps({"pid": os.getpid(), **fields}) + "\n").encode())


def main(argv: list[str]) -> int:
    db, hub_key_path, host, port, pki, receipts, *rest = argv
    crash_after = int(rest[0]) if rest else 0
    pki_dir = Path(pki)
    logging.basicConfig(
        filename=Path(receipts).with_suffix(".log"),
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    fd = os.open(receipts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    hub_key = load_private_key(Path(hub_key_path), X25519PrivateKey)  # type: ignore[type-abstract]
    store = AlertStore(db)  # a SQLite path or a store URL
    link = MqttLink(fault_test_settings(host, int(port), pki_dir, HUB_CN, CLIENT_ID))
    worker = HubAlertWorker(link, _RecordingReceiver(store, hub_key, fd, crash_after))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    if not link.wait_connected(60):
        logging.error("hub worker: not connected after 60 s")
        return 3
    _record(fd, {"event": "ready"})
    stop.wait()
    worker.stop()
    store.close()
    os.close(fd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
