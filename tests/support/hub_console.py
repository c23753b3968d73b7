"""The console hub set-up for tests (shared with the latency benchmark: ``hil/``)."""

from __future__ import annotations

from hil.local_console_hub import PASSWORD, USERS, BrokerLink, HubSetup, free_port, make_hub

__all__ = ["PASSWORD", "USERS", "BrokerLink", "HubSetup", "free_port", "make_hub"]
