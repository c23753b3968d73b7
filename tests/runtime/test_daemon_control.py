"""The daemon's control plane beyond the happy path: a stop for a deployment that is no
longer live, a live activation whose signer is revoked by another operator's document,
and an activation accepted just before its window starts (the camera waits).

Real parts: mosquitto with the shipped config, hub keys and signed documents, the
models, the replay camera on a generated street scene, the audit log on disk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime.daemon_world import DEPLOYMENT, audit_entries, wait_for, watchlist_for

from agent.config import load_config
from agent.hub.keys.activation_issuer import ActivationIssuer
from agent.matching.watchlist_bundle import SealedBundle
from agent.runtime.capture_gate import GateState
from agent.runtime.daemon import AgentDaemon
from agent.runtime.deployment_report import ReportArchive
from agent.trust.audit_log import verify_audit_log
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _watchlist_files(site: VirtualSite, watchlist_hash: str) -> list[Path]:
    return list((site.state_dir / "watchlists").glob(f"{watchlist_hash}*"))


@pytest.fixture
def bundle(site: VirtualSite, shared_data: Path, models_dir: Path) -> SealedBundle:
    return watchlist_for(site, shared_data, models_dir)


@pytest.fixture
def daemon(site: VirtualSite, scene: Path, bundle: SealedBundle) -> Iterator[AgentDaemon]:
    """A started daemon holding the deployment's watchlist; shut down after the test."""
    d = AgentDaemon(load_config(site.write_device_config(scene, fps=15, loop=True)))
    d.start()
    try:
        d.watchlists.import_bundle(bundle.data)
        yield d
    finally:
        d.shutdown()


def _activate(daemon: AgentDaemon, site: VirtualSite, watchlist_hash: str) -> None:
    result = daemon.handle_control_document(
        site.issuer().activation(
            site.device_id, DEPLOYMENT, 3600, 600, watchlist_hash, 0.5, "PS 0001"
        )
    )
    assert result == f"activated {DEPLOYMENT}", result


def test_a_stop_after_the_camera_failed_still_wipes_the_watchlist(
    site: VirtualSite, daemon: AgentDaemon, bundle: SealedBundle
) -> None:
    _activate(daemon, site, bundle.watchlist_hash)
    # The camera fails: the deployment is over for now, its watchlist kept sealed for a
    # re-activation.
    daemon.gate.stop("source-died")
    wait_for("deployment ended", lambda: daemon._deployment is None, 30)
    assert _watchlist_files(site, bundle.watchlist_hash)
    result = daemon.handle_control_document(
        site.issuer().stop(site.device_id, DEPLOYMENT, "officers left")
    )
    assert result.startswith(f"stopped {DEPLOYMENT} (not live; 1 watchlist")
    assert not _watchlist_files(site, bundle.watchlist_hash)
    assert daemon.gate.state is GateState.IDLE
    stops = audit_entries(site, "control.stop")
    assert [s["names_live"] for s in stops] == [False]
    wiped = [e["reason"] for e in audit_entries(site, "watchlist.wiped")]
    assert wiped == ["stopped"]


def test_a_stop_for_another_deployment_leaves_the_live_one_running(
    site: VirtualSite, daemon: AgentDaemon, bundle: SealedBundle
) -> None:
    _activate(daemon, site, bundle.watchlist_hash)
    result = daemon.handle_control_document(
        site.issuer().stop(site.device_id, "dep-other-002", "wrong site")
    )
    assert result.startswith("stopped dep-other-002 (not live; 0 watchlist")
    assert daemon.gate.state is GateState.ACTIVE
    assert _watchlist_files(site, bundle.watchlist_hash)


def test_revoking_the_live_signer_closes_the_camera_and_ends_the_deployment(
    site: VirtualSite, daemon: AgentDaemon, bundle: SealedBundle
) -> None:
    root = site.hub.load_root_key()
    site.hub.add_operator("alice", "supervisor", 30, root)
    site.hub.add_operator("bob", "supervisor", 30, root)
    by_alice = ActivationIssuer(site.hub, "alice", "").activation(
        site.device_id, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 0001"
    )
    assert daemon.handle_control_document(by_alice) == f"activated {DEPLOYMENT}"
    # Alice's key is lost; the hub revokes it, and bob's next renewal carries the list.
    site.hub.revoke_operator("alice", root)
    renewal = ActivationIssuer(site.hub, "bob", "").renewal(site.device_id, DEPLOYMENT, 600)
    assert daemon.handle_control_document(renewal).startswith("rejected: revocation")
    assert daemon.gate.state is GateState.IDLE
    assert daemon._deployment is None
    assert not _watchlist_files(site, bundle.watchlist_hash)
    assert [e["signer"] for e in audit_entries(site, "control.signer_revoked")] == ["alice"]
    ended = [e["reason"] for e in audit_entries(site, "deployment.ended")]
    assert ended == ["signer-revoked"]
    # The report anchors the audit log as it was when it was signed.
    (report,) = ReportArchive(site.state_dir, 86400.0).read(DEPLOYMENT)
    assert report["end_reason"] == "signer-revoked"
    anchor = {report["audit_seq"]: report["audit_sha256"]}
    device_key = daemon.keys.signing.public_key()
    verify_audit_log((site.state_dir / "audit.jsonl").read_bytes(), device_key, anchor)


def test_an_early_activation_arms_the_gate_and_opens_at_not_before(
    site: VirtualSite, daemon: AgentDaemon, bundle: SealedBundle
) -> None:
    import time

    starts = int(time.time()) + 3  # inside the clock tolerance: accepted, not yet open
    early = site.issuer().activation(
        site.device_id,
        DEPLOYMENT,
        3600,
        600,
        bundle.watchlist_hash,
        0.5,
        "PS 0001",
        not_before=starts,
    )
    assert daemon.handle_control_document(early) == f"armed {DEPLOYMENT}"
    assert daemon.gate.state is GateState.ARMED and daemon.gate.status().frames_delivered == 0
    wait_for("camera open", lambda: daemon.gate.state is GateState.ACTIVE, 30)
    assert time.time() >= starts
    wait_for("frames", lambda: daemon.gate.status().frames_delivered > 0, 30)
    stop = site.issuer().stop(site.device_id, DEPLOYMENT, "done")
    assert daemon.handle_control_document(stop) == f"stopped {DEPLOYMENT}"
    kinds = [e for e in ("gate.armed", "gate.opened") if audit_entries(site, e)]
    assert kinds == ["gate.armed", "gate.opened"]
    (report,) = audit_entries(site, "deployment.ended")
    assert report["frames"] > 0


def test_a_pushed_revocation_list_reaches_an_idle_camera_and_closes_a_live_one(
    site: VirtualSite, daemon: AgentDaemon, bundle: SealedBundle
) -> None:
    """Issue 15 item 7: a revocation list sent on its own (``lfr-hub publish
    hub-revocations.json``) is verified against the root and installed, audited, without
    waiting for the camera's next activation; an older or forged one changes nothing."""
    from agent.trust.key_certificates import issue_revocation_list

    root = site.hub.load_root_key()
    site.hub.add_operator("alice", "supervisor", 30, root)
    by_alice = ActivationIssuer(site.hub, "alice", "").activation(
        site.device_id, DEPLOYMENT, 3600, 600, bundle.watchlist_hash, 0.5, "PS 0001"
    )
    # Idle: a list revoking a key the camera has never seen is still installed.
    first = issue_revocation_list(root, 2, {"ab" * 32}, 1_800_000_000)
    outcome = daemon.apply_control_message(first)
    assert (outcome.kind, outcome.outcome) == ("revocations", "applied"), outcome
    assert daemon.verifier.trust.revocation_version == 2
    assert (site.keys_dir / "hub-revocations.json").read_bytes() == first
    assert [e["version"] for e in audit_entries(site, "control.revocations")] == [2]
    # Replayed (not newer): kept as it is.
    again = daemon.apply_control_message(first)
    assert again.outcome == "applied" and "not newer" in again.detail
    # Signed by a key that is not the root: refused, nothing changes.
    forged = issue_revocation_list(site.hub.watchlist_signing_key(), 9, set(), 1_800_000_000)
    refused = daemon.apply_control_message(forged)
    assert (refused.outcome, refused.step) == ("refused", "revocation")
    assert daemon.verifier.trust.revocation_version == 2
    # Live: alice's activation runs until a pushed list revokes her key.
    assert daemon.handle_control_document(by_alice) == f"activated {DEPLOYMENT}"
    _, alice_cert = site.hub.operator("alice", "")
    revoking = issue_revocation_list(root, 3, {"ab" * 32, alice_cert.key_id}, 1_800_000_001)
    assert daemon.apply_control_message(revoking).outcome == "applied"
    assert daemon.gate.state is GateState.IDLE and daemon._deployment is None
    # The gate's own close may be ending the deployment on another thread: its entry
    # follows within moments.
    deadline = time.monotonic() + 10
    while not audit_entries(site, "deployment.ended") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e["reason"] for e in audit_entries(site, "deployment.ended")] == ["signer-revoked"]
