"""A stand-in hub worker for power cuts of the hub store: ``python -m support.store_writer
URL DEVICE`` stores sealed alerts one after another, adjudicates every third, and prints
a line for each once the store has returned (the moment a real worker would acknowledge
the alert to the camera, or show the outcome to the operator as saved):

    stored <alert_id> <stored|duplicate>
    adjudicated <alert_id> <outcome>

It runs until it is killed: the power cut kills it with the database server.
"""

from __future__ import annotations

import sys

from agent.hub.store.alert_store import AlertStore
from agent.trust.alert_envelope import open_alert, seal_alert
from support.alert_factory import AlertKeys, make_content


def main(argv: list[str]) -> int:
    url, device = argv[1], argv[2]
    keys = AlertKeys.generate()
    store = AlertStore(url)
    seq = 0
    while True:
        seq += 1
        sealed = seal_alert(
            make_content(device, seq, scene=True),
            seq=seq,
            device_key=keys.device,
            hub_key=keys.hub.public_key(),
        )
        alert = open_alert(
            sealed.envelope, sender=device, device_key=keys.device.public_key(), hub_key=keys.hub
        )
        result = store.store_alert(alert, key=keys.device.public_key())
        print(f"stored {alert.header.alert_id} {result.value}", flush=True)
        if seq % 3 == 0:
            store.adjudicate(alert.header.alert_id, "false-alert", "op:tester", device_id=device)
            print(f"adjudicated {alert.header.alert_id} false-alert", flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
