"""Junk into the daemon's real message handlers while a deployment is live.

Random bytes and structurally plausible documents (real envelope shapes, real payload
types, real signed documents with one byte flipped, hostile JSON) go to the activation,
watchlist and ack handlers. Each one is refused and audited, no exception escapes, and
the camera stays open for the live deployment throughout.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime.daemon_world import DEPLOYMENT, activation, audit_entries, wait_for, watchlist_for

from agent.config import load_config
from agent.protocol.topics import ack_topic
from agent.runtime.capture_gate import GateState
from agent.runtime.daemon import AgentDaemon
from agent.trust.alert_envelope import AlertEnvelopeError, decode_ack, encode_ack
from hil.virtual_site import VirtualSite

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.fault]

TYPES = [
    "application/vnd.lfr.activation+json; v=1",
    "application/vnd.lfr.renewal+json; v=1",
    "application/vnd.lfr.stop+json; v=1",
    "application/vnd.lfr.watchlist+json; v=1",
    "application/vnd.lfr.alert+json; v=1",
]
#: Hostile inputs every parser must refuse cleanly (deep nesting, a 5000-digit integer).
HOSTILE = [
    b"[" * 200000,
    b"9" * 5000,
    b'{"deployment_id":"dep-e2e-001","sequence":' + b"9" * 5000 + b"}",
    # A well-formed envelope around a body nested 200000 deep.
    json.dumps(
        {
            "payload": base64.b64encode(b"[" * 200000).decode(),
            "payloadType": "application/vnd.lfr.activation+json; v=1",
            "signatures": [{"keyid": "0" * 64, "sig": base64.b64encode(bytes(64)).decode()}],
        },
        separators=(",", ":"),
    ).encode(),
    b"",
    b"\xff\xfe\x00",
    b'{"payloadType":"application/vnd.lfr.stop+json; v=1","payload":NaN,"signatures":[]}',
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A DSSE-shaped envelope with a junk or plausible body and a random signature."""
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.fixed_dictionaries(
                {
                    "deployment_id": st.sampled_from([DEPLOYMENT, "other", ""]),
                    "sequence": st.integers(),
                    "device_id": st.text(max_size=20),
                    "not_after": st.floats(allow_nan=False),
                }
            ).map(lambda d: json.dumps(d).encode()),
        )
    )
    env = {
        "payload": b64(body),
        "payloadType": draw(st.sampled_from(TYPES) | st.text(max_size=30)),
        "signatures": [
            {
                "keyid": draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
                "sig": b64(draw(st.binary(min_size=64, max_size=64))),
            }
        ],
    }
    return json.dumps(env, separators=(",", ":")).encode()


def flipped(document: bytes) -> st.SearchStrategy[bytes]:
    """The real document with one byte changed somewhere."""
    return st.tuples(st.integers(0, len(document) - 1), st.integers(1, 255)).map(
        lambda t: document[: t[0]] + bytes([document[t[0]] ^ t[1]]) + document[t[0] + 1 :]
    )


def test_junk_into_the_handlers_of_a_live_deployment(
    site: VirtualSite, scene: Path, shared_data: Path, models_dir: Path
) -> None:
    bundle = watchlist_for(site, shared_data, models_dir)
    cfg = load_config(site.write_device_config(scene, loop=True))
    daemon = AgentDaemon(cfg)
    daemon.start()
    counted = {"control": 0, "watchlist": 0}
    try:
        assert daemon.watchlists.import_bundle(bundle.data).status == "stored"
        real = activation(site, bundle)
        assert daemon.handle_control_document(real) == f"activated {DEPLOYMENT}"
        stop = site.issuer().stop(site.device_id, DEPLOYMENT, "officers left")
        junk = st.one_of(
            st.binary(max_size=2000),
            envelopes(),
            flipped(real),
            flipped(stop),
            st.sampled_from(HOSTILE),
        )

        def live() -> None:
            assert daemon.gate.state is GateState.ACTIVE
            assert daemon.gate.status().deployment_id == DEPLOYMENT

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(payload=junk)
        def control(payload: bytes) -> None:
            counted["control"] += 1
            result = daemon.handle_control_document(payload)
            assert result.startswith("rejected: "), result
            live()

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(payload=st.one_of(st.binary(max_size=2000), envelopes(), st.sampled_from(HOSTILE)))
        def watchlist(payload: bytes) -> None:
            counted["watchlist"] += 1
            daemon._handle_watchlist(payload)
            live()

        @settings(
            max_examples=100,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(data=st.data())
        def ack(data: st.DataObject) -> None:
            pending = [e.alert_id for e in daemon.outbox.pending()]
            ids = st.sampled_from(pending) if pending else st.just("0" * 32)
            # Well-formed acks naming held alerts (or none) with secrets the hub never
            # sent, beside plain junk.
            forged = st.lists(
                st.tuples(
                    ids | st.text("0123456789abcdef", min_size=32, max_size=32),
                    st.binary(min_size=16, max_size=16),
                ),
                max_size=4,
            ).map(encode_ack)
            payload = data.draw(
                st.one_of(st.binary(max_size=2000), envelopes(), st.sampled_from(HOSTILE), forged)
            )
            before = (daemon.publisher.forged_acks, daemon.publisher.acknowledged)
            try:
                named = {a for a, _ in decode_ack(payload)}
                expect_forged = bool(named & set(pending))
            except AlertEnvelopeError:
                expect_forged = True
            daemon.publisher._on_ack(ack_topic(site.device_id), payload)
            assert (daemon.publisher.forged_acks > before[0]) is expect_forged
            assert daemon.publisher.acknowledged == before[1]
            assert all(a in daemon.outbox for a in pending)  # junk deletes nothing
            live()

        control()
        watchlist()
        # Held alerts (no hub is listening) give the forged acks something to name.
        wait_for("an alert in the outbox", lambda: len(daemon.outbox) > 0, 120)
        ack()
        live()
    finally:
        daemon.shutdown()
    rejected = audit_entries(site, "control.rejected")
    assert len(rejected) == counted["control"]
    assert len(audit_entries(site, "watchlist.refused")) == counted["watchlist"]
    # The only deployment that ever ended is the live one, at shutdown.
    assert [e["reason"] for e in audit_entries(site, "deployment.ended")] == ["shutdown"]
    assert not audit_entries(site, "control.stop")
