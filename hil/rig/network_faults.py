"""Network isolation and network faults for the virtual rig.

Preferred layout: two network namespaces of the rig's own, joined by a veth pair::

    lfrhil-<pid>-hub  10.231.N.1  mosquitto + the hub (the rig process itself)
    lfrhil-<pid>-dev  10.231.N.2  lfr-agent run

A partition is an nftables table inside the *device* namespace that drops every packet
to and from the hub address, so TCP sessions hang exactly as on a cut cable (no reset),
and healing deletes that table. Nothing outside these two namespaces is touched; this
machine's kernel has no ``tc netem``, so delay and loss shaping are not offered.

Fallback when namespaces cannot be created (no privilege, no ``ip``): everything runs
on loopback and a partition is a broker stop/start, which the report says.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Protocol

from agent.errors import LfrError

CLONE_NEWNET = 0x40000000
NFT_TABLE = "lfrhil"
EGRESS_TABLE = "lfrhil_egress"


class NetworkFaultError(LfrError):
    """A namespace or nftables step failed."""


def _run(args: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise NetworkFaultError(f"{' '.join(args)}: {proc.stderr.strip() or proc.returncode}")


class NetworkFaults(Protocol):
    mode: str  # "netns" or "loopback"
    note: str  # one line for the report: how partitions are made

    def partition(self) -> None: ...
    def heal(self) -> None: ...


class NamespacePair:
    """Two namespaces and a veth between them; partitions with nftables in the device one."""

    mode = "netns"

    def __init__(self, tag: str | None = None) -> None:
        tag = tag or str(os.getpid())
        self.hub_ns = f"lfrhil-{tag}-hub"
        self.device_ns = f"lfrhil-{tag}-dev"
        subnet = 1 + int(tag) % 250 if tag.isdigit() else 231
        self.hub_addr = f"10.231.{subnet}.1"
        self.device_addr = f"10.231.{subnet}.2"
        self.note = (
            f"network namespaces {self.hub_ns} / {self.device_ns} over veth; "
            "partition = nftables drop inside the device namespace"
        )
        self._created: list[str] = []
        self.partitioned = False

    def create(self) -> None:
        if shutil.which("ip") is None or shutil.which("nft") is None:
            raise NetworkFaultError("ip or nft not installed")
        try:
            for ns in (self.hub_ns, self.device_ns):
                _run(["ip", "netns", "add", ns])
                self._created.append(ns)
                self._in(ns, ["ip", "link", "set", "lo", "up"])
            # Created directly inside the namespaces: the host's own links never change.
            _run(
                [
                    *("ip", "link", "add", "lfrhub0", "netns", self.hub_ns, "type", "veth"),
                    *("peer", "name", "lfrdev0", "netns", self.device_ns),
                ]
            )
            for ns, link, addr in (
                (self.hub_ns, "lfrhub0", self.hub_addr),
                (self.device_ns, "lfrdev0", self.device_addr),
            ):
                self._in(ns, ["ip", "addr", "add", f"{addr}/30", "dev", link])
                self._in(ns, ["ip", "link", "set", link, "up"])
        except (NetworkFaultError, OSError, subprocess.TimeoutExpired) as exc:
            self.destroy()
            raise NetworkFaultError(f"network namespaces not available: {exc}") from None

    def _in(self, ns: str, args: list[str], stdin: str | None = None) -> None:
        _run(["ip", "netns", "exec", ns, *args], stdin)

    def watch_egress(self, broker_port: int) -> None:
        """Route everything from the device namespace to the veth (so nothing fails silently
        before netfilter sees it) and count and record every packet that is not loopback,
        not to the broker and not IPv6 link-local housekeeping. The hub namespace does not
        forward, so such packets go nowhere."""
        self._in(self.device_ns, ["ip", "route", "add", "default", "via", self.hub_addr])
        rules = f"""table inet {EGRESS_TABLE} {{
  set seen4 {{ type ipv4_addr . inet_service; flags dynamic; size 256; }}
  set seen6 {{ type ipv6_addr; flags dynamic; size 256; }}
  chain out {{
    type filter hook output priority 10; policy accept;
    oifname "lo" accept
    ip daddr {self.hub_addr} tcp dport {broker_port} accept
    ip6 daddr {{ fe80::/10, ff02::/16 }} accept
    meta nfproto ipv4 add @seen4 {{ ip daddr . th dport }} counter
    meta nfproto ipv6 add @seen6 {{ ip6 daddr }} counter
  }}
}}
"""
        self._in(self.device_ns, ["nft", "-f", "-"], rules)

    def egress(self) -> tuple[int, list[str]]:
        """(packets the device sent anywhere but the broker, their destinations)."""
        proc = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.device_ns,
                "nft",
                "-j",
                "list",
                "table",
                "inet",
                EGRESS_TABLE,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            raise NetworkFaultError(f"nft list table {EGRESS_TABLE}: {proc.stderr.strip()}")
        packets, seen = 0, []
        for item in json.loads(proc.stdout).get("nftables", []):
            rule = item.get("rule")
            if rule:
                packets += sum(
                    int(e["counter"]["packets"]) for e in rule.get("expr", []) if "counter" in e
                )
            found = item.get("set")
            if found:
                for el in found.get("elem", []):
                    value = el.get("elem", {}).get("val", el) if isinstance(el, dict) else el
                    if isinstance(value, dict) and "concat" in value:
                        value = ":".join(str(v) for v in value["concat"])
                    seen.append(str(value))
        return packets, seen

    def enter_hub(self) -> None:
        """Move this process (before it starts any thread) into the hub namespace."""
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(f"/run/netns/{self.hub_ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise NetworkFaultError(f"setns {self.hub_ns}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)

    def device_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.device_ns]

    def partition(self) -> None:
        rules = f"""table inet {NFT_TABLE} {{
  chain out {{ type filter hook output priority 0; policy accept; ip daddr {self.hub_addr} drop; }}
  chain in {{ type filter hook input priority 0; policy accept; ip saddr {self.hub_addr} drop; }}
}}
"""
        self._in(self.device_ns, ["nft", "-f", "-"], rules)
        self.partitioned = True

    def heal(self) -> None:
        self._in(self.device_ns, ["nft", "delete", "table", "inet", NFT_TABLE])
        self.partitioned = False

    def destroy(self) -> None:
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._created = []


class BrokerOutage:
    """Loopback fallback: a partition is the broker stopped, healing is starting it again."""

    mode = "loopback"

    def __init__(self, stop: Callable[[], None], start: Callable[[], None], why: str) -> None:
        self._stop, self._start = stop, start
        self.note = f"loopback only ({why}); partition = broker stop/start"

    def partition(self) -> None:
        self._stop()

    def heal(self) -> None:
        self._start()
