"""The virtual rig wired for a soak: the hub as its own long-running process.

Everything else is the virtual rig's (``hil/rig/virtual_rig.py``): the shipped broker
with mutual TLS and per-client rules, the agent in its own network namespace on a looping
replay of a synthetic street scene, the cut between the namespaces. What changes:

* the alerts are received, stored and acknowledged by the hub *process* the soak
  samples (``hub_process.HUB_COMMAND``, connecting as ``hub.soak-hub``), not by a thread
  of the rig;
* the rig's own hub link (``hub.main``) only sends the watchlist and the signed control
  documents, and watches the device's retained status for its frame rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.hub.keys.operator_keys import ALERT_KEY_FILE
from agent.hub.keys.pki import hub_identity
from agent.hub.store.alert_store import AlertRow, AlertStore
from agent.hub.store.report_store import DeploymentReportStore
from agent.protocol.topics import status_topic
from hil.rig.rig_description import RigDescription
from hil.rig.virtual_rig import VirtualRig
from hil.soak.device_status_watch import DeviceStatusWatch
from hil.soak.hub_process import HUB_IDENTITY, HubProcess, hub_command_line, lfr_hub_program

HUB_CONNECT_TIMEOUT_S = 15.0


class SoakRig(VirtualRig):
    def __init__(
        self,
        desc: RigDescription,
        out_dir: Path,
        models_dir: Path,
        shared_data: Path,
        hub_template: str,
        say: Any = print,
    ) -> None:
        super().__init__(desc, out_dir, models_dir, shared_data, say)
        self.hub_template = hub_template
        self.status = DeviceStatusWatch(desc.device.id)
        self.hub_process: HubProcess | None = None

    def _start_hub(self) -> None:
        self.store = AlertStore(self.site.hub_db)
        self.report_store = DeploymentReportStore(self.site.hub_db)
        # The hub process gets the intake role only, as an operator would grant it.
        self.broker.client_files(hub_identity(HUB_IDENTITY), roles=("intake",))
        values: dict[str, str | Path] = {
            "lfr_hub": lfr_hub_program(),
            "db": self.site.hub_db,
            "alert_key": self.site.hub_dir / ALERT_KEY_FILE,
            "hub_keys": self.site.hub_dir,
            "broker": f"{self.broker.host}:{self.broker.port}",
            "pki_dir": self.broker.pki_dir,
            "identity": HUB_IDENTITY,
            "work": self.work_dir,
        }
        command = hub_command_line(self.hub_template, values)
        self.hub_process = HubProcess(command, self.work_dir / "hub.log")
        self.hub_process.start()
        self.hub_link = self.site.hub_link()
        self.hub_link.subscribe(status_topic(self.device_id), self.status.on_message)
        self.hub_link.start()
        if not self.hub_link.wait_connected(HUB_CONNECT_TIMEOUT_S):
            raise UsageError("soak: the hub link could not connect to the rig's broker")

    @property
    def hub_log_path(self) -> Path:
        return self.work_dir / "hub.log"

    def stored_alerts(self) -> list[AlertRow]:
        return self.store.list_alerts(device_id=self.device_id, limit=100_000)

    def teardown(self) -> None:
        # The device first (its last report reaches a hub that still listens), then the
        # hub process, then the rest as the rig does it.
        if self._device is not None:
            self._device.stop()
            self._device = None
        if self.hub_process is not None:
            code = self.hub_process.stop()
            # 130: lfr-hub's exit on SIGINT (Ctrl-C), the clean way to end `alerts watch`.
            if code not in (0, 130, None):
                self.notes.append(f"hub process exited with code {code}")
        link = getattr(self, "hub_link", None)
        if link is not None:
            link.stop()
        super().teardown()
