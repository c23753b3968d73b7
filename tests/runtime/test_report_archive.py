"""The camera's report archive: every deployment id a report may carry, pending until
acknowledged, and the rule for reports written before acknowledgements existed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.runtime.deployment_report import DeploymentReport, ReportArchive, sign_report
from agent.trust.report_ack_secret import derive_secret, report_identity

DEV = "lfr-rep-01"
KEY, HUB = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()


def _report(deployment: str, seq: int = 1) -> DeploymentReport:
    return DeploymentReport(
        device_id=DEV,
        deployment_id=deployment,
        activation_sequence=seq,
        signer="sup",
        officer="PS 1",
        not_before=0,
        not_after=60,
        opened_at=None,
        closed_at=30.0,
        end_reason="stopped",
        watchlist_sha256="ab" * 32,
        watchlist_size=1,
        threshold=0.6,
        detector_model="yunet",
        embedder_model="sface",
        frames=0,
        frames_dropped=0,
        faces_detected=0,
        faces_passed_quality=0,
        faces_compared=0,
        embeddings=0,
        tracks=0,
        alerts=0,
        software_version="0.1.0",
    )


@pytest.mark.parametrize("deployment", ["dep-1", "dep_2026.11-a", "a", "9.9_9-9", "x" * 63])
def test_every_deployment_id_stays_pending_until_acknowledged(
    tmp_path: Path, deployment: str
) -> None:
    archive = ReportArchive(tmp_path, 86400)
    name = archive.save(
        _report(deployment, 12), sign_report(_report(deployment, 12), KEY, HUB.public_key())
    )
    assert [n for n, _ in archive.pending()] == [name]
    archive.mark_sent(name)  # a PUBACK: not delivery
    assert [n for n, _ in archive.pending()] == [name]
    secret = derive_secret(KEY, report_identity(DEV, deployment, 12))
    assert not archive.acknowledge(DEV, deployment, 11, secret, KEY)
    assert archive.acknowledge(DEV, deployment, 12, secret, KEY)
    assert archive.pending() == []


def test_a_report_without_an_ack_secret_is_done_once_the_broker_took_it(tmp_path: Path) -> None:
    """Written by a camera from before acknowledgements: no hub can ever ack it."""
    archive = ReportArchive(tmp_path, 86400)
    name = archive.save(_report("dep-1"), sign_report(_report("dep-1"), KEY))
    assert [n for n, _ in archive.pending()] == [name]
    archive.mark_sent(name)
    assert archive.pending() == []
