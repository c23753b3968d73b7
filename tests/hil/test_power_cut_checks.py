"""The power-cut checks on folders and facts made here: each check must see a broken
promise as broken (a check that cannot fail proves nothing), and a whole state as whole."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.transport.alert_outbox import AlertOutbox, encode_entry
from agent.trust.audit_log import AuditLog
from agent.trust.key_certificates import issue_revocation_list
from agent.trust.sequence_store import SequenceStore
from hil.power_cut.device_snapshot import DeviceSnapshot, take
from hil.power_cut.ledger import Ledger
from hil.power_cut.power_cut_run import PointResult
from hil.power_cut.power_cut_site import AGED_ID_PREFIX, SentDocument
from hil.power_cut.promises import ALERTS, AUDIT, PROMISES, SEQUENCE, Findings, check_survivors
from hil.power_cut.results_table import promise_counts, table

ROOT = Ed25519PrivateKey.generate()
DEVICE = Ed25519PrivateKey.generate()


def _doc(kind: str, seq: int, deployment: str = "pc-1", revocation: int = 1) -> SentDocument:
    return SentDocument(kind, deployment, seq, b"{}", revocation)


def _state(tmp_path: Path) -> tuple[Path, Path]:
    state, keys = tmp_path / "state", tmp_path / "keys"
    state.mkdir()
    keys.mkdir()
    return state, keys


def test_a_snapshot_reads_what_the_device_stores_made(tmp_path: Path) -> None:
    state, keys = _state(tmp_path)
    SequenceStore.in_state_dir(state).advance(7)
    (keys / "hub-revocations.json").write_bytes(issue_revocation_list(ROOT, 3, [], 0))
    box = AlertOutbox(
        state / "outbox",
        max_bytes=1 << 20,
        alarm_fraction=0.9,
        retention_s=1e6,
        audit=lambda e, f: None,
    )
    aid = "ab" * 16
    box.add(aid, box.next_sequence(), b"envelope", bytes(16))
    (state / "outbox" / ".tmp-2.alert").write_bytes(b"torn")
    (state / "watchlists").mkdir()
    (state / "watchlists" / f"{'c' * 64}.lfrwl").write_bytes(b"sealed")
    (state / "watchlists" / "index.json").write_text(
        json.dumps({"stored": {"c" * 64: {}}, "high_water": {"pc-1": 5.0}})
    )
    log = AuditLog.open(state / "audit.jsonl", DEVICE, 50)
    log.append("alert.sealed", alert_id=aid, deployment_id="pc-1", sequence=1)
    log.close()
    snap = take(state, keys, ROOT.public_key())
    assert snap.sequence == 7 and snap.revocation_version == 3
    assert snap.outbox_ids == {aid} and snap.outbox_other == [".tmp-2.alert"]
    assert set(snap.watchlist_files) == {f"{'c' * 64}.lfrwl"}
    assert snap.index_hashes == {"c" * 64} and snap.index_high_water == {"pc-1": 5.0}
    assert [f["alert_id"] for f in snap.audit_events("alert.sealed")] == [aid]
    (state / "activation-sequence.json").write_text("{not json")
    (state / "watchlists" / "index.json").write_text("[")
    broken = take(state, keys, ROOT.public_key())
    assert broken.sequence == -1 and broken.index_hashes == "unreadable"


def test_survivors_that_kept_every_promise_pass() -> None:
    ledger = Ledger(accepted_sequences={3}, durable_revocation=2, durable_audit=b"a\nb\n")
    surv = DeviceSnapshot(audit=b"a\nb\nc", sequence=4, revocation_version=2)
    assert check_survivors(surv, ledger).all_held()


def test_survivors_that_lost_synced_state_are_caught() -> None:
    ledger = Ledger(accepted_sequences={5}, durable_revocation=3, durable_audit=b"a\nb\n")
    surv = DeviceSnapshot(audit=b"a\n", sequence=4, revocation_version=2)
    f = check_survivors(surv, ledger)
    assert f.held(AUDIT) is False and "lost synced entries" in f.problems[AUDIT][0]
    assert f.held(SEQUENCE) is False
    assert any("went back from 5 to 4" in p for p in f.problems[SEQUENCE])
    assert any("version 3 to 2" in p for p in f.problems[SEQUENCE])
    unreadable = check_survivors(DeviceSnapshot(sequence=-1), Ledger())
    assert unreadable.problems[SEQUENCE] == [
        "the activation sequence file is unreadable after the cut"
    ]


def test_the_ledger_takes_facts_only_from_what_survives() -> None:
    ledger = Ledger()
    ledger.docs += [_doc("activation", 1), _doc("renewal", 2), _doc("stop", 3, revocation=2)]
    lines = [
        {"event": "watchlist.loaded", "fields": {"watchlist_hash": "h1"}},
        {"event": "watchlist.wiped", "fields": {"watchlist_hash": "h1", "reason": "stopped"}},
        # wiped as an orphan: its import never completed, so it was never stored
        {"event": "watchlist.wiped", "fields": {"watchlist_hash": "h2", "reason": "orphan"}},
        {"event": "alert.sealed", "fields": {"alert_id": "a1"}},
        {"event": "gate.opening", "fields": {"sequence": 1}},
    ]
    snap = DeviceSnapshot(
        audit=b"\n".join(json.dumps(x).encode() for x in lines) + b"\n",
        outbox_ids={"a2", AGED_ID_PREFIX + "0" * 26},
        sequence=2,
    )
    ledger.take_audit_facts(snap)
    ledger.take_outbox(snap)
    assert ledger.wiped == {"h1"} and ledger.accepted_alerts == {"a1", "a2"}
    assert ledger.durable_sequence == 1
    ledger.observe_durable(snap)  # the sequence file itself says 2
    assert ledger.durable_sequence == 2
    last = ledger.last_accepted_activation()
    assert last is not None and last.sequence == 1
    # The stop (3) was never seen accepted: its deployment is not counted as stopped,
    # and the revocation list it carried is not owed.
    assert ledger.stops_accepted() == set() and ledger.revocation_owed() == 1
    ledger.accepted_sequences.add(3)
    assert ledger.stops_accepted() == {"pc-1"} and ledger.revocation_owed() == 2


def test_the_agent_log_is_read_once_line_by_line(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    log.write_text(
        "… INFO agent.runtime.daemon: alert sealed and queued [deployment_id=pc-1 "
        f"alert_id={'1' * 32}]\n… INFO other line\n… alert sealed and queued [alert_id="
    )
    ledger = Ledger()
    ledger.read_agent_log(log)
    assert ledger.accepted_alerts == {"1" * 32}
    with log.open("a") as f:
        f.write(f"{'2' * 32}]\n")
    ledger.read_agent_log(log)
    assert ledger.accepted_alerts == {"1" * 32, "2" * 32}


def test_the_table_counts_each_promise_per_crash_point() -> None:
    ok, bad = Findings(), Findings()
    ok.checked(ALERTS, [])
    bad.checked(ALERTS, ["1 accepted alert(s) never reached the hub: abc"])
    results = [
        PointResult(1, "outbox entry after rename", "device", "op", "fired", 0.5, ok),
        PointResult(2, "random moment", "device", "random", "random", 0.9, bad),
    ]
    counts = dict((p, (h, b)) for p, h, b in promise_counts(results, Findings()))
    assert counts[ALERTS] == (1, 1)
    text = table(results, Findings(), [0.5, 0.9], "make power-cut N=2")
    assert "| alerts | 1 | 1 |" in text
    assert [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")][
        1:
    ] == [p for p, _ in PROMISES]
    assert "slowest 0.90 s (crash point 2: random moment)" in text


def test_an_outbox_entry_of_the_rig_is_one_the_agent_reads() -> None:
    data = encode_entry(AGED_ID_PREFIX + "0" * 26, 10**12, b"aged", 0.0)
    assert data.startswith(b"LFROBX2\n")


def test_a_report_the_hub_stored_but_never_printed_counts_as_at_the_hub(tmp_path: Path) -> None:
    # The hub committed the report and was cut before printing it; the camera sent it
    # again and the hub took it as a duplicate, which it does not print. Its store is
    # the witness: the real hub store's tables, made by the hub's own migrations.
    from agent.hub.store.report_store import DeploymentReportStore
    from hil.power_cut.site_processes import HubReceiver

    db = tmp_path / "alerts.db"
    DeploymentReportStore(db).close()
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(deployment_reports)")]
    assert "deployment_id" in columns
    hub = HubReceiver(db, None, tmp_path / "k", tmp_path / "log")  # type: ignore[arg-type]
    assert not hub.has_report("pc-274")
    hub.reports.add(("pc-1", 3))
    assert hub.report_deployments() == {"pc-1"}
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"INSERT INTO deployment_reports ({', '.join(columns)}) VALUES "
            f"({', '.join('?' for _ in columns)})",
            [_filler(c) for c in columns],
        )
    assert hub.has_report("pc-274")
    assert hub.report_deployments() == {"pc-1", "pc-274"}


def _filler(column: str) -> object:
    return "pc-274" if column == "deployment_id" else (1 if column != "payload" else b"x")


def test_the_parts_of_one_plan_merge_into_one_table(tmp_path: Path) -> None:
    from hil.power_cut.__main__ import main as power_cut_main
    from hil.power_cut.crash_points import plan
    from hil.power_cut.results_table import merge, to_json

    planned = plan(4, 22)

    def part(numbers: list[int], broken: bool = False) -> dict[str, object]:
        results = []
        for cp in planned:
            if cp.number in numbers:
                f = Findings()
                f.checked(ALERTS, ["lost one"] if broken and cp.number == numbers[-1] else [])
                results.append(
                    PointResult(
                        cp.number, cp.label, cp.place.target, cp.place.kind, "fired", 0.7, f
                    )
                )
        return to_json(results, Findings(), [0.7] * len(results))

    first, rest = part([1, 2]), part([3, 4], broken=True)
    results, _, start_up, again = merge([first, rest])
    assert [r.number for r in results] == [1, 2, 3, 4] and len(start_up) == 4 and not again
    # A point two parts tried counts once; the second run is kept apart, to be reported.
    results, _, _, again = merge([first, part([2, 3], broken=True)])
    assert [r.number for r in results] == [1, 2, 3] and [r.number for r in again] == [2]
    for name, data in (("a", first), ("b", rest)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "joined"
    rc = power_cut_main(
        ["--points", "4", "--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
    )
    report = (out / "report.md").read_text(encoding="utf-8")
    assert rc == 1  # a broken promise in a part is broken in the whole
    assert "| alerts | 3 | 1 |" in report
    assert "run in parts joined by --merge" in report
    assert "crash point 4" in report and "lost one" in report
    # A part missing: the table says which points were not tried.
    assert power_cut_main(["--points", "4", "--merge", str(tmp_path / "a"), "--out", str(out)]) == 0
    assert "2 of the 4 planned crash points were tried; not tried: 3–4 (2)" in (
        out / "report.md"
    ).read_text(encoding="utf-8")
