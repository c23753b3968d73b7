"""A complete, real key hierarchy in a temporary folder: hub store, device keys, verifier.

Shared by the trust, hub, runtime and CLI tests (imported as ``trust.trust_world``).
Everything is real cryptography on the real filesystem; only the clock is manual.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.hub.keys.operator_keys import HubKeyStore
from agent.trust.activation_verifier import ActivationVerifier
from agent.trust.device_keys import DeviceKeys, generate_device_keys
from agent.trust.hub_trust_store import HubTrustStore
from agent.trust.sequence_store import SequenceStore
from agent.trust.system_clock import Clock, ManualClock

NOW = 1_790_000_000  # 2026-09-21, fixed so tests never depend on the real date
DEVICE = "lfr-test-01"
DEPLOYMENT = "dep-2026-001"
WATCHLIST = "ab" * 32
FLOOR = 0.4


@dataclass
class TrustWorld:
    hub: HubKeyStore
    keys_dir: Path
    state_dir: Path
    device_keys: DeviceKeys
    clock: ManualClock

    def issuer(self, operator: str = "alice") -> ActivationIssuer:
        return ActivationIssuer(self.hub, operator, "", wall=self.clock.wall)

    def verifier(
        self,
        clock: Clock | None = None,
        require_clock_sync: bool = True,
        read_only: bool = False,
        max_duration_h: float = 12.0,
    ) -> ActivationVerifier:
        """A fresh verifier from the files on disk, as after a restart."""
        return ActivationVerifier(
            DEVICE,
            HubTrustStore.load(self.keys_dir),
            SequenceStore.in_state_dir(self.state_dir, read_only=read_only),
            clock or self.clock,
            max_duration_s=max_duration_h * 3600,
            tolerance_s=120.0,
            require_clock_sync=require_clock_sync,
            threshold_floor=FLOOR,
        )

    def activation(self, operator: str = "alice", **kw: object) -> bytes:
        args: dict[str, object] = {
            "device_id": DEVICE,
            "deployment_id": DEPLOYMENT,
            "duration_s": 4 * 3600,
            "lease_s": 600,
            "watchlist_sha256": WATCHLIST,
            "threshold": 0.6,
            "officer": "PS 1234 Example",
        }
        args.update(kw)
        return self.issuer(operator).activation(**args)  # type: ignore[arg-type]


def make_world(tmp: Path) -> TrustWorld:
    hub = HubKeyStore.init(tmp / "hub", "alice", "supervisor", now=NOW)
    hub.add_operator("bob", "operator", 365, hub.load_root_key(), now=NOW)
    keys_dir = tmp / "device-keys"
    hub.export_device_trust(keys_dir)
    device_keys = generate_device_keys(keys_dir)
    return TrustWorld(hub, keys_dir, tmp / "state", device_keys, ManualClock(wall=NOW + 10))
