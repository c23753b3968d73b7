"""A deployment planned as a target false-alert rate: the hub calibrates the threshold
against the sealed watchlist with the configured cohort, stores the figures with the
plan, shows and audits them, and the activation the console signs carries them to the
camera. A target the cohort cannot support, text that is not a rate, or a hub with no
cohort is refused with one line and nothing stored. Real hub keys, a real sealed
watchlist, a real SQLite store, real scoring and a real mosquitto."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hub.calibration.calibration_world import MODEL_ID, cohort, seal
from hub.console.test_deployments_page import (
    DEV,
    SAM_PASSPHRASE,
    DeploymentsConsole,
    _local,
)
from starlette.testclient import TestClient
from support.hub_console import make_hub
from support.mosquitto_broker import MosquittoBroker

from agent.hub.calibration.threshold_calibration import calibrate
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.service.hub_config import CalibrationSection
from agent.hub.store.deployment_store import DeploymentStore
from agent.hub.watchlists.watchlist_reader import read_hub_watchlist
from agent.trust.activation_token import TYPE_BY_KIND, Activation, parse_body
from agent.trust.signed_document import key_id, open_document

pytestmark = [pytest.mark.system]

DEPLOYMENT = "dep-cal"  # what calibration_world seals the watchlist for
COHORT_FACES = 2000  # supports 1/100 (300 needed), not 1/6000 (18,000 needed)


class CalibratingConsole(DeploymentsConsole):
    watchlist_hash: str
    cohort: np.ndarray


def _world(tmp_path: Path, broker: MosquittoBroker, with_cohort: bool) -> CalibratingConsole:
    keys = HubKeyStore.init(tmp_path / "keys", "sam", "supervisor", passphrase=SAM_PASSPHRASE)
    faces = cohort(COHORT_FACES)
    npz = tmp_path / "cohort.npz"
    np.savez(npz, embeddings=faces, model_id=np.array(MODEL_ID))
    section = CalibrationSection(cohort=[npz] if with_cohort else [])
    c = CalibratingConsole(make_hub(tmp_path / "hub"), keys, broker, section)
    sealed = seal(keys, c.maps / "central.sealed")
    c.watchlist_hash = read_hub_watchlist(sealed, keys).watchlist_hash
    c.cohort = faces
    (c.maps / "central.sealed.hub-map.json").write_text(
        json.dumps(
            {
                "watchlist_hash": c.watchlist_hash,
                "deployment_id": DEPLOYMENT,
                "devices": [DEV],
                "entries": 200,
                "expires_at": time.time() + 86400,
                "refs": {},
            }
        )
    )
    return c


@pytest.fixture
def console(tmp_path: Path, mqtt_broker: MosquittoBroker) -> Iterator[CalibratingConsole]:
    c = _world(tmp_path, mqtt_broker, with_cohort=True)
    yield c
    c.close()


def plan(c: CalibratingConsole, client: TestClient, csrf: str, target: str) -> tuple[int, str]:
    start = time.time() + 3600
    form = {
        "csrf": csrf,
        "watchlist": c.watchlist_hash,
        "camera": DEV,
        "window_start": _local(start),
        "window_end": _local(start + 3600),
        "basis": "target",
        "target_fpir": target,
        "threshold": "0.5",  # the expert field, ignored for a target
        "officer": "Insp. Jane Doe",
        "place": "Central Square",
        "purpose": "public-event-safety",
    }
    r = client.post("/deployments", data=form)
    error = re.search(r'id="deployment-error">([^<]*)<', r.text)
    return r.status_code, html.unescape(error.group(1)) if error else ""


def test_a_target_rate_is_calibrated_stored_shown_audited_and_signed(
    console: CalibratingConsole,
) -> None:
    sam, csrf = console.login("sam")
    assert plan(console, sam, csrf, "1/100") == (303, "")

    d = DeploymentStore(console.db).get(DEPLOYMENT)
    assert d is not None and d.calibration is not None
    keys = HubKeyStore.open(console.keys.dir)
    expected = calibrate(
        read_hub_watchlist(console.maps / "central.sealed", keys),
        console.cohort,
        score="snorm",
        target_fpir=0.01,
    )
    assert (d.score, d.target_fpir, d.threshold) == ("snorm", 0.01, expected.threshold)
    assert d.calibration == expected.calibration
    assert d.calibration.cohort_size == COHORT_FACES
    assert d.calibration.false_alerts <= COHORT_FACES // 100

    row = sam.get("/deployments").text
    assert (
        f"target 1 in 100: S-norm threshold {d.threshold:.2f}; "
        f"{d.calibration.false_alerts} of 2,000 cohort faces alert, 95% CI"
    ) in row

    (planned,) = [
        json.loads(line)
        for line in console.hub.audit_log.read_text().splitlines()
        if '"deployment.planned"' in line
    ]
    fields = planned.get("fields", planned)
    assert (fields["target_fpir"], fields["threshold"], fields["threshold_kind"]) == (
        0.01,
        d.threshold,
        "snorm",
    )

    assert sam.post(f"/deployments/{DEPLOYMENT}/notice", data={"csrf": csrf}).status_code == 303
    unlock = {"csrf": csrf, "passphrase": SAM_PASSPHRASE}
    assert sam.post("/signing/unlock", data=unlock).status_code == 303
    assert sam.post(f"/deployments/{DEPLOYMENT}/activate", data={"csrf": csrf}).status_code == 303
    assert console.got.wait(10), "no activation reached the camera's topic"
    signer = console.keys.operator_certificate("sam").public_key
    body = open_document(
        console.sent[0],
        TYPE_BY_KIND["activation"],
        lambda k: signer if k == key_id(signer) else None,
    ).body
    activation = parse_body("activation", body)
    assert isinstance(activation, Activation)
    assert (activation.score, activation.threshold, activation.target_fpir) == (
        "snorm",
        d.threshold,
        0.01,
    )
    assert activation.calibration == d.calibration


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("one in six thousand", "target false-alert rate: 'one in six thousand' is not a rate"),
        ("0", "target false-alert rate: must be above 0 and at most 1"),
        ("1/6000", "needs a cohort of at least 18000 non-mated faces"),
    ],
)
def test_a_target_that_cannot_be_calibrated_is_refused_and_nothing_stored(
    console: CalibratingConsole, target: str, error: str
) -> None:
    sam, csrf = console.login("sam")
    status, shown = plan(console, sam, csrf, target)
    assert status == 400 and error in shown and "\n" not in shown
    assert DeploymentStore(console.db).all() == []
    assert '"deployment.planned"' not in console.hub.audit_log.read_text()


def test_a_hub_without_a_cohort_refuses_a_target_and_takes_a_threshold(
    tmp_path: Path, mqtt_broker: MosquittoBroker
) -> None:
    c = _world(tmp_path, mqtt_broker, with_cohort=False)
    try:
        sam, csrf = c.login("sam")
        status, shown = plan(c, sam, csrf, "1/6000")
        assert status == 400 and "no calibration cohort in the hub config" in shown
        assert DeploymentStore(c.db).all() == []
        start = time.time() + 3600
        form = {
            "csrf": csrf,
            "watchlist": c.watchlist_hash,
            "camera": DEV,
            "window_start": _local(start),
            "window_end": _local(start + 3600),
            "basis": "threshold",
            "threshold": "0.55",
            "officer": "Insp. Jane Doe",
            "place": "Central Square",
            "purpose": "public-event-safety",
        }
        assert sam.post("/deployments", data=form).status_code == 303
        (d,) = DeploymentStore(c.db).all()
        assert (d.score, d.threshold, d.target_fpir, d.calibration) == ("cosine", 0.55, None, None)
        assert "cosine 0.55 (given)" in sam.get("/deployments").text
    finally:
        c.close()
