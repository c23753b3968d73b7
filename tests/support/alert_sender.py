"""A device-side alert sender for fault tests, run as its own process so it can be SIGKILLed.

    python tests/support/alert_sender.py STATE_DIR HOST PORT PKI_DIR DEVICE_ID COUNT

STATE_DIR holds the device keys (``device-key.pem``, ``hub-alert-pub.pem``), the outbox
and ``committed.log`` — one alert id per line, appended after ``submit`` returned (so
the entry was durably in the outbox). A SIGKILL between the two leaves an entry the log
lacks; at start the process appends the ids of such entries, so the log lists every
alert the device committed, once. The process submits alerts until the log has COUNT
lines, keeps delivering until the outbox is empty (every alert acknowledged by the
hub), then publishes ``SENTINEL`` on its alert topic every few seconds (each logged as
``sentinels=N``) until the test creates ``STATE_DIR/stop``, and exits 0. The hub rejects
the sentinel; as it comes from the same client on the same topic as every alert copy
before it, its arrival at the hub means no copy is still in flight. It is repeated
because, unlike an alert, nothing resends it: a single copy, sent once after the broker's
crash and the hub's restart, was about once in ten full-suite runs never seen by the hub
(the cause is not pinned down; the alerts themselves are resent until acknowledged). Each change of the publisher's count of ignored (forged or malformed) acks is
logged as ``forged_acks=N`` in ``sender.log``. If ``STATE_DIR/hold-at`` holds a number N,
the process stops submitting before its N-th alert until ``STATE_DIR/resume`` exists, so
a test can be sure the outbox still holds alerts when it does something to the hub.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.protocol.topics import alert_topic
from agent.transport.alert_outbox import AlertOutbox
from agent.transport.alert_publisher import AlertPublisher
from agent.transport.mqtt_link import MqttLink, PublishResult
from agent.trust.key_files import load_private_key, load_public_key
from support.alert_factory import make_content
from support.fault_link import fault_test_settings

RESEND_AFTER_S = 5.0
SENTINEL = b"end of alerts: sentinel"
SENTINEL_EVERY_S = 3.0
#: Longer than the test waits for the hub to see one (210 s): a hub restarted behind a
#: backlog of alert copies on a loaded machine reaches the first sentinel only after it has
#: worked through them, and a sender that gave up first would fail a run that was fine.
SENTINELS_FOR_S = 300.0


def main(argv: list[str]) -> int:
    state, host, port, pki, device_id, count = argv
    state_dir, pki_dir, total = Path(state), Path(pki), int(count)
    logging.basicConfig(
        filename=state_dir / "sender.log",
        level=logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    device_key = load_private_key(state_dir / "device-key.pem", Ed25519PrivateKey)  # type: ignore[type-abstract]
    hub_key = load_public_key(state_dir / "hub-alert-pub.pem", X25519PublicKey)  # type: ignore[type-abstract]
    outbox = AlertOutbox(
        state_dir / "outbox",
        max_bytes=256 * 1024 * 1024,
        alarm_fraction=0.9,
        retention_s=31 * 86400,
        audit=lambda event, fields: logging.info("audit %s %s", event, fields),
    )
    link = MqttLink(fault_test_settings(host, int(port), pki_dir, device_id, device_id))
    publisher = AlertPublisher(
        outbox,
        link,
        device_id=device_id,
        device_key=device_key,
        hub_key=hub_key,
        resend_after_s=RESEND_AFTER_S,
    )
    log_path = state_dir / "committed.log"
    logged = log_path.read_text().split() if log_path.exists() else []
    known = set(logged)
    unlogged = [e.alert_id for e in outbox.pending() if e.alert_id not in known]
    if unlogged:
        logging.info("committed but unlogged before the last stop: %d", len(unlogged))
        with open(log_path, "a", encoding="ascii") as f:
            f.write("".join(aid + "\n" for aid in unlogged))
            f.flush()
            os.fsync(f.fileno())
    done = len(logged) + len(unlogged)
    link.start()
    publisher.start()
    forged = 0

    def note_forged() -> None:
        nonlocal forged
        if publisher.forged_acks != forged:
            forged = publisher.forged_acks
            logging.info("forged_acks=%d", forged)

    hold_file = state_dir / "hold-at"
    hold_at = int(hold_file.read_text()) if hold_file.exists() else -1
    with open(log_path, "a", encoding="ascii") as committed:
        while done < total:
            while done == hold_at and not (state_dir / "resume").exists():
                note_forged()
                time.sleep(0.05)
            sealed = publisher.submit(make_content(device_id, done))
            committed.write(sealed.header.alert_id + "\n")
            committed.flush()
            os.fsync(committed.fileno())
            done += 1
            note_forged()
    while len(outbox):
        note_forged()
        time.sleep(0.1)
    note_forged()
    publisher.stop()
    taken = threading.Event()
    results: list[PublishResult] = []

    def got(result: PublishResult) -> None:
        results.append(result)
        taken.set()

    stop_file = state_dir / "stop"
    deadline = time.monotonic() + SENTINELS_FOR_S
    sent = 0
    while not stop_file.exists():
        if time.monotonic() > deadline:
            logging.error(
                "sentinels sent for %.0f s and no stop: the hub never saw one", SENTINELS_FOR_S
            )
            return 3
        taken.clear()
        link.publish(alert_topic(device_id), SENTINEL, on_result=got)
        if not taken.wait(30) or not results[-1].ok:
            logging.error("sentinel not taken by the broker: %s", results)
            return 3
        sent += 1
        logging.info("sentinels=%d", sent)
        until = time.monotonic() + SENTINEL_EVERY_S
        while not stop_file.exists() and time.monotonic() < until:
            time.sleep(0.05)
    link.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
