"""Legal holds on SQLite and PostgreSQL alike (``hub_db_url`` runs each test once per
backend): a hold needs a case reference; the retention purge skips a held alert (its
crops, outcomes and clip stay) until the hold is released; one active hold per alert;
a purged alert cannot be held."""

from __future__ import annotations

import pytest
from test_alert_store import opened

from agent.errors import UsageError
from agent.hub.store.alert_store import AlertStore
from agent.hub.store.database import HubDatabase
from agent.hub.store.legal_hold_store import LegalHoldError, LegalHoldStore


@pytest.fixture
def stores(hub_db_url: str) -> tuple[AlertStore, LegalHoldStore]:
    db = HubDatabase(hub_db_url)
    return AlertStore(db), LegalHoldStore(db)


def _rows(store: AlertStore, *seqs: int) -> list[int]:
    found = []
    for seq in seqs:
        a = opened(seq)
        store.store_alert(a, received_at=1000.0 + seq)
        found.append(store.get(a.header.alert_id).row_id)
    return found


@pytest.mark.parametrize("case_ref", ["", "   ", "<script>", "x" * 65, "-leading"])
def test_a_hold_without_a_valid_case_reference_is_refused(
    stores: tuple[AlertStore, LegalHoldStore], case_ref: str
) -> None:
    store, holds = stores
    (row,) = _rows(store, 1)
    with pytest.raises(UsageError, match="case reference"):
        holds.hold(row, case_ref, "sam")
    assert holds.active(row) is None and holds.history(row) == []


def test_purge_skips_held_alerts_until_released(stores: tuple[AlertStore, LegalHoldStore]) -> None:
    store, holds = stores
    held, free = _rows(store, 1, 2)
    store.adjudicate(store.get_row(held).alert_id, "confirmed-true", "olive")
    placed = holds.hold(held, " CROY/2026/0042 ", "sam")
    assert placed.case_ref == "CROY/2026/0042"
    assert holds.active_for([held, free]) == {held: holds.active(held)}
    record = store.purge(0)
    assert (record.alerts, record.held) == (1, 1)
    assert store.is_purged(store.get_row(held).alert_id) is False
    kept = store.get_row(held)
    assert kept.outcome == "confirmed-true"
    assert store.crop(kept.alert_id, "probe", device_id=kept.device_id) is not None
    assert [r.row_id for r in store.list_alerts()] == [held]
    # Still held at the next purge; released, it goes at the one after.
    assert store.purge(0).alerts == 0
    released = holds.release(held, "sam")
    assert (released.released_by, released.case_ref) == ("sam", "CROY/2026/0042")
    assert holds.active(held) is None
    assert store.purge(0).alerts == 1
    assert store.list_alerts() == []
    assert store.is_purged(kept.alert_id)


def test_one_active_hold_per_alert_and_no_hold_on_a_purged_alert(
    stores: tuple[AlertStore, LegalHoldStore],
) -> None:
    store, holds = stores
    row, gone = _rows(store, 1, 2)
    holds.hold(row, "CASE-1", "sam")
    with pytest.raises(LegalHoldError, match="already on hold"):
        holds.hold(row, "CASE-2", "sam")
    holds.release(row, "sam")
    with pytest.raises(LegalHoldError, match="not on hold"):
        holds.release(row, "sam")
    holds.hold(row, "CASE-2", "sue")
    assert [(h.case_ref, h.released_by) for h in holds.history(row)] == [
        ("CASE-1", "sam"),
        ("CASE-2", None),
    ]
    assert store.purge(0).alerts == 1  # ``gone`` only
    with pytest.raises(LegalHoldError, match="not stored"):
        holds.hold(gone, "CASE-3", "sam")
