"""The ``mqtt_broker`` fixture: a real mosquitto (``hil/local_broker.py``) per test.

Use it (exposed by ``tests/conftest.py``)::

    def test_x(mqtt_broker):
        settings = mqtt_broker.client_settings("lfr-dev-01")   # issues the cert on demand
        ...
        mqtt_broker.restart()        # same port, same persistence folder
        mqtt_broker.stop(); mqtt_broker.start()
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.local_broker import HUB_CN, MOSQUITTO, MosquittoBroker, free_port

__all__ = ["HUB_CN", "MosquittoBroker", "free_port", "mqtt_broker"]


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A running mosquitto with the shipped config, stopped and removed after the test."""
    if not MOSQUITTO.exists():
        pytest.fail(f"{MOSQUITTO} is missing (apt-get install mosquitto)")
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
