"""Network partitions inside the rig's own namespaces: a TCP connection from the device
namespace to the hub namespace works, fails while partitioned, and works again after
healing. Needs the privilege to create namespaces (skipped with the reason otherwise)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hil.rig.network_faults import NamespacePair, NetworkFaultError

pytestmark = [pytest.mark.system, pytest.mark.fault]

PORT = 18830
LISTEN = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind((sys.argv[1], {PORT})); s.listen(8); print('up', flush=True)\n"
    "while True:\n    c,_=s.accept(); c.close()\n"
)
CONNECT = (
    "import socket,sys\n"
    "try:\n"
    f"    socket.create_connection((sys.argv[1], {PORT}), timeout=1.5).close(); print('ok')\n"
    "except OSError as e:\n    print('failed', e)\n"
)


def connect(pair: NamespacePair) -> str:
    return subprocess.run(
        [*pair.device_prefix(), sys.executable, "-c", CONNECT, pair.hub_addr],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()


def test_partition_and_heal() -> None:
    pair = NamespacePair(tag="t1")
    try:
        pair.create()
    except NetworkFaultError as exc:
        pytest.skip(f"namespaces not permitted here: {exc}")
    server = None
    try:
        server = subprocess.Popen(
            ["ip", "netns", "exec", pair.hub_ns, sys.executable, "-c", LISTEN, pair.hub_addr],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        assert connect(pair) == "ok"
        pair.partition()
        assert connect(pair).startswith("failed")
        pair.heal()
        assert connect(pair) == "ok"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        pair.destroy()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert pair.hub_ns not in listed and pair.device_ns not in listed
