"""The renewal keeper's decision (``renewals_due``) and the lease book it reads: a live
deployment is renewed only while a fresh confirmation stands from a session whose key
is unlocked, at most once per renewal interval; the book follows what the camera
signed (real receipts, real keys)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.hub.devices.live_leases import LeaseBook, LiveLease
from agent.hub.devices.officer_holds import Hold, HoldTiming
from agent.hub.intake.control_receipts import ControlReceipt, open_receipt
from agent.hub.service.renewal_keeper import renewals_due
from agent.protocol.topics import receipt_topic
from agent.runtime.control_receipts import ControlOutcome, build_receipt

DEV, DEP = "lfr-cam-01", "dep-1"
KEY = (DEV, DEP)
TIMING = HoldTiming(confirm_every_s=120, renew_every_s=60, lease_s=300)
NOW = 1_800_000_000.0
LIVE = LiveLease(DEV, DEP, NOW - 500, NOW + 200, "open")
HOLD = Hold(DEV, DEP, "sam", "session-a", NOW - 10)


def due(
    *,
    hold: Hold | None = HOLD,
    lease: LiveLease = LIVE,
    signers: frozenset[str] = frozenset({"session-a"}),
    last_sent: float | None = None,
    now: float = NOW,
) -> list[Hold]:
    return renewals_due(
        now,
        {KEY: hold} if hold else {},
        [lease],
        signers=signers,
        last_sent={KEY: last_sent} if last_sent is not None else {},
        timing=TIMING,
    )


def test_a_fresh_confirmation_from_an_unlocked_session_renews() -> None:
    assert due() == [HOLD]
    assert due(last_sent=NOW - 60) == [HOLD]


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("nobody confirmed", {"hold": None}),
        ("the confirmation is too old", {"hold": Hold(DEV, DEP, "sam", "session-a", NOW - 120)}),
        ("the session logged out or its key was locked", {"signers": frozenset({"session-b"})}),
        ("renewed less than renew_every_s ago", {"last_sent": NOW - 59}),
        (
            "the deployment was stopped",
            {"lease": LiveLease(DEV, DEP, None, None, "closed", "stopped")},
        ),
    ],
)
def test_no_renewal(why: str, changes: dict[str, object]) -> None:
    assert due(**changes) == [], why  # type: ignore[arg-type]


def test_a_confirmation_for_another_deployment_renews_nothing() -> None:
    other = Hold(DEV, "dep-2", "sam", "session-a", NOW - 1)
    found = renewals_due(
        NOW, {other.key: other}, [LIVE], signers={"session-a"}, last_sent={}, timing=TIMING
    )
    assert found == []


CAMERA = Ed25519PrivateKey.generate()


def receipt(
    document: bytes, kind: str, outcome: str = "applied", at: float = NOW
) -> ControlReceipt:
    step = None if outcome == "applied" else "lease"
    signed = build_receipt(
        DEV,
        document,
        ControlOutcome(kind, outcome, f"{kind} {outcome}", step, 3, DEP),
        "open" if kind != "stop" else "closed",
        at,
        CAMERA,
    )
    return open_receipt(receipt_topic(DEV), signed, {DEV: CAMERA.public_key()}.get)


def test_the_book_follows_the_cameras_receipts() -> None:
    clock = [NOW]
    book = LeaseBook(clock=lambda: clock[0])
    book.on_receipt(receipt(b"activation sent elsewhere", "activation"))
    (lease,) = book.live()
    assert (lease.key, lease.lease_until, lease.camera) == (KEY, None, "open")

    renewal = b"renewal this hub sent"
    book.expect(renewal, 30)
    book.on_receipt(receipt(renewal, "renewal", at=NOW + 5))
    assert book.live()[0].lease_until == NOW + 35

    clock[0] = NOW + 36  # no renewal since: the camera has closed by itself
    assert book.live() == []
    (ended,) = book.leases()
    assert (ended.ended, ended.camera) == ("lease lapsed", "closed")


def test_a_stop_or_a_refused_renewal_ends_it() -> None:
    book = LeaseBook(clock=lambda: NOW)
    book.on_receipt(receipt(b"a", "activation"))
    book.on_receipt(receipt(b"b", "stop"))
    assert book.live() == [] and book.leases()[0].ended == "stopped"
    book.on_receipt(receipt(b"c", "activation"))
    book.on_receipt(receipt(b"d", "renewal", "refused"))
    assert book.leases()[0].ended == "renewal refused (lease)"
    assert book.of_device(DEV) is not None and book.of_device("lfr-cam-02") is None
