"""Device-side watchlist store: import checks, sealed at rest, bind by hash, wipe, audit."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.matching import watchlist_store
from agent.matching.gallery import Gallery
from agent.matching.watchlist_bundle import WatchlistContent, WatchlistError, build_bundle
from agent.matching.watchlist_store import WIPE_AFTER_EXPIRY_S, WatchlistStore
from agent.trust.audit_log import AuditLog, verify_audit_log
from agent.trust.signed_document import key_id

T0 = 1_800_000_000.0
MODEL_SHA = "ab" * 32


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sk = Ed25519PrivateKey.generate()
        self.dk = X25519PrivateKey.generate()
        self.clock = Clock()
        self.galleries: list[Gallery] = []
        # The device's real audit log: every step must be accepted by it and land in it.
        self.audit_log = AuditLog.open(tmp / "audit.jsonl", self.sk, checkpoint_every=50)
        self.audit = self.audit_log.append

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        data = self.audit_log.path.read_bytes()
        verify_audit_log(data, self.sk.public_key())  # raises if the chain is broken
        entries = [json.loads(line) for line in data.splitlines()]
        return [(e["event"], e["fields"]) for e in entries if not e["event"].startswith("audit.")]

    def finder(self, now: float):  # type: ignore[no-untyped-def]
        pk = self.sk.public_key()
        kid = key_id(pk)
        return lambda k: pk if k == kid else None

    def gallery(self, emb: np.ndarray, refs: list[str]) -> Gallery:
        g = Gallery(emb, refs)
        self.galleries.append(g)
        return g

    def store(self, model_sha: str = MODEL_SHA, max_bytes: int = 8 << 20) -> WatchlistStore:
        return WatchlistStore(
            self.tmp / "state",
            device_id="dev-a",
            device_key=self.dk,
            find_signing_key=self.finder,
            model_id="sface@abab",
            model_sha256=model_sha,
            max_bundle_bytes=max_bytes,
            audit=self.audit,
            clock=self.clock,
            make_gallery=self.gallery,
        )

    def bundle(
        self,
        *,
        created: float = T0 - 60,
        expires: float = T0 + 3600,
        deployment: str = "dep-1",
        model_sha: str = MODEL_SHA,
        n: int = 4,
        devices: tuple[str, ...] = ("dev-a",),
        key: X25519PrivateKey | None = None,
    ):  # type: ignore[no-untyped-def]
        emb = np.random.default_rng(n).standard_normal((n, 128)).astype(np.float32)
        c = WatchlistContent(
            deployment,
            devices,
            created,
            expires,
            "sface@" + model_sha[:4],
            model_sha,
            [f"w{i:04d}" for i in range(n)],
            emb,
        )
        pub = (key or self.dk).public_key()
        return build_bundle(c, self.sk, {d: pub for d in devices})

    def reasons(self, event: str) -> list[str]:
        return [f.get("reason", "") for e, f in self.events if e == event]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def _files(store: WatchlistStore) -> list[Path]:
    return sorted(store.dir.glob("*.lfrwl"))


def test_import_keeps_sealed_file_0600_and_audits(env: Env) -> None:
    s = env.store()
    b = env.bundle()
    r = s.import_bundle(b.data)
    assert r.status == "stored" and r.watchlist.watchlist_hash == b.watchlist_hash
    (f,) = _files(s)
    assert f.read_bytes() == b.data  # stored exactly as received: still encrypted
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert [e for e, _ in env.events] == ["watchlist.loaded"]
    assert s.import_bundle(b.data).status == "unchanged"  # QoS 1 redelivery is harmless
    # A restart finds it again.
    assert [w.watchlist_hash for w in env.store().stored()] == [b.watchlist_hash]


@pytest.mark.parametrize(
    ("kwargs", "reason", "message"),
    [
        ({"devices": ("dev-b",)}, "wrong-device", "not for this device dev-a"),
        ({"model_sha": "cd" * 32}, "wrong-model", "made with model sface@cdcd.*runs sface@abab"),
        ({"expires": T0 - 1}, "expired", "expired at"),
    ],
)
def test_import_refusals(env: Env, kwargs: dict[str, Any], reason: str, message: str) -> None:
    s = env.store()
    with pytest.raises(WatchlistError, match=message):
        s.import_bundle(env.bundle(**kwargs).data)
    assert env.reasons("watchlist.refused") == [reason]
    assert _files(s) == [] and s.stored() == []


def test_tampered_and_oversized_payloads_are_refused(env: Env) -> None:
    s = env.store(max_bytes=4096)
    data = bytearray(env.bundle().data)
    data[-5] ^= 0xFF
    r = s.handle_watchlist_message(bytes(data))
    assert isinstance(r, WatchlistError) and r.reason == "tampered"
    big = env.bundle(n=100).data
    r = s.handle_watchlist_message(big)
    assert isinstance(r, WatchlistError) and r.reason == "too-large"
    assert f"{len(big)} bytes exceeds the limit of 4096" in str(r)
    assert isinstance(s.handle_watchlist_message(b"\x00garbage"), WatchlistError)
    assert env.reasons("watchlist.refused") == ["tampered", "too-large", "not-a-bundle"]
    assert _files(s) == []


def test_older_bundle_cannot_replace_newer(env: Env) -> None:
    s = env.store()
    new = env.bundle(created=T0 - 10, n=5)
    old = env.bundle(created=T0 - 100, n=3)
    s.import_bundle(new.data)
    with pytest.raises(WatchlistError, match="not newer than the one already received"):
        s.import_bundle(old.data)
    assert [w.watchlist_hash for w in s.stored()] == [new.watchlist_hash]
    # ... nor after a restart, nor after the newer one was wiped.
    s2 = env.store()
    s2.end_deployment("dep-1")
    with pytest.raises(WatchlistError, match="not newer"):
        s2.import_bundle(old.data)


def test_newer_bundle_replaces_and_wipes_older(env: Env) -> None:
    s = env.store()
    old = env.bundle(created=T0 - 100, n=3)
    new = env.bundle(created=T0 - 10, n=5)
    s.import_bundle(old.data)
    g = s.bind(old.watchlist_hash, "dep-1")
    r = s.import_bundle(new.data)
    assert r.replaced == (old.watchlist_hash,)
    assert [p.name for p in _files(s)] == [f"{new.watchlist_hash}.lfrwl"]
    assert len(g) == 0 and s.bound_hash is None
    assert "replaced" in env.reasons("watchlist.wiped")


def test_bind_only_for_named_hash_and_deployment(env: Env) -> None:
    s = env.store()
    b = env.bundle(n=6)
    s.import_bundle(b.data)
    with pytest.raises(WatchlistError, match="not on this device"):
        s.bind("0" * 64, "dep-1")
    with pytest.raises(WatchlistError, match="for deployment dep-1, not dep-2"):
        s.bind(b.watchlist_hash, "dep-2")
    g = s.bind(b.watchlist_hash, "dep-1")
    assert len(g) == 6 and s.bound_hash == b.watchlist_hash
    scores, _ = g.search(np.ones(128, np.float32), 1)
    assert scores.shape == (1, 1)
    assert env.reasons("watchlist.refused") == ["not-stored", "wrong-deployment"]
    s.release()
    assert len(g) == 0 and _files(s)  # memory cleared, sealed file kept


def test_bind_refuses_expired_and_tampered_at_rest(env: Env) -> None:
    s = env.store()
    b = env.bundle()
    s.import_bundle(b.data)
    (f,) = _files(s)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(WatchlistError, match="does not decrypt"):
        s.bind(b.watchlist_hash, "dep-1")
    f.write_bytes(b.data)
    env.clock.now = T0 + 3601
    with pytest.raises(WatchlistError, match="expired"):
        s.bind(b.watchlist_hash, "dep-1")


def test_stop_wipes_file_and_memory(env: Env) -> None:
    s = env.store()
    b = env.bundle()
    s.import_bundle(b.data)
    g = s.bind(b.watchlist_hash, "dep-1")
    assert s.end_deployment("dep-1", reason="stop") == [b.watchlist_hash]
    assert _files(s) == [] and len(g) == 0 and s.stored() == [] and s.bound_hash is None
    assert env.reasons("watchlist.wiped") == ["stop"]
    assert env.store().stored() == []  # the index agrees after a restart


def test_24h_after_expiry_wipes_even_without_activation(env: Env) -> None:
    s = env.store()
    b = env.bundle(expires=T0 + 3600)
    s.import_bundle(b.data)
    g = s.bind(b.watchlist_hash, "dep-1")
    assert s.tick(T0 + 3599) == []
    assert s.tick(T0 + 3600) == []  # expired: released from memory, file kept
    assert len(g) == 0 and s.bound_hash is None and len(_files(s)) == 1
    assert s.tick(T0 + 3600 + WIPE_AFTER_EXPIRY_S - 1) == []
    env.clock.now = T0 + 3600 + WIPE_AFTER_EXPIRY_S
    assert s.tick() == [b.watchlist_hash]
    assert _files(s) == [] and s.stored() == []
    assert env.reasons("watchlist.wiped") == ["24h-after-expiry"]


def test_window_end_wipes_a_deployment_that_was_never_stopped(env: Env) -> None:
    # A lapsed lease (or a camera failure, or a restart) releases the gallery but keeps the
    # sealed file for a re-activation; once the activation window is over it is wiped, and
    # a restart in between does not forget the window.
    s = env.store()
    b = env.bundle(expires=T0 + 7 * 24 * 3600)
    s.import_bundle(b.data)
    s.bind(b.watchlist_hash, "dep-1", window_ends_at=T0 + 600)
    s.release("lease-lapsed")
    restarted = env.store()
    assert restarted.tick(T0 + 599) == [] and len(_files(restarted)) == 1
    assert restarted.tick(T0 + 600) == [b.watchlist_hash]
    assert _files(restarted) == [] and restarted.stored() == []
    assert env.reasons("watchlist.wiped") == ["window-ended"]


def test_a_later_activation_moves_the_window_end(env: Env) -> None:
    s = env.store()
    b = env.bundle(expires=T0 + 7 * 24 * 3600)
    s.import_bundle(b.data)
    s.bind(b.watchlist_hash, "dep-1", window_ends_at=T0 + 600)
    s.bind(b.watchlist_hash, "dep-1", window_ends_at=T0 + 1200)  # re-activated, still bound
    assert s.tick(T0 + 900) == [] and s.bound_hash == b.watchlist_hash
    s.release("lease-lapsed")
    s.bind(b.watchlist_hash, "dep-1", window_ends_at=T0 + 300)  # the latest word wins
    s.release("lease-lapsed")
    assert s.tick(T0 + 300) == [b.watchlist_hash] and s.bound_hash is None


def test_the_bound_watchlist_is_left_to_its_deployment_end(env: Env) -> None:
    # At not_after the gate closes as `expired` and the deployment end wipes the
    # watchlist; the tick must not wipe it first (the camera would close as
    # `watchlist-missing`, a non-final reason).
    s = env.store()
    b = env.bundle(expires=T0 + 7 * 24 * 3600)
    s.import_bundle(b.data)
    s.bind(b.watchlist_hash, "dep-1", window_ends_at=T0 + 600)
    assert s.tick(T0 + 600) == [] and s.bound_hash == b.watchlist_hash
    assert s.end_deployment("dep-1", "expired") == [b.watchlist_hash]


def test_orphan_file_from_a_crash_is_wiped_on_start(env: Env) -> None:
    s = env.store()
    orphan = s.dir / ("f" * 64 + ".lfrwl")
    orphan.write_bytes(env.bundle().data)
    env.store()
    assert not orphan.exists()
    assert env.reasons("watchlist.wiped") == ["orphan"]


def test_wipe_all(env: Env) -> None:
    s = env.store()
    s.import_bundle(env.bundle(deployment="dep-1").data)
    s.import_bundle(env.bundle(deployment="dep-2").data)
    assert len(s.wipe_all()) == 2
    assert _files(s) == [] and s.stored() == []


def test_wipe_by_another_process_releases_the_bound_gallery(env: Env) -> None:
    daemon, technician = env.store(), env.store()
    b = env.bundle()
    daemon.import_bundle(b.data)
    assert daemon.hash_for_deployment("dep-1") == b.watchlist_hash
    assert daemon.hash_for_deployment("dep-2") is None
    g = daemon.bind(b.watchlist_hash, "dep-1")
    technician.wipe_all("operator")
    assert daemon.hash_for_deployment("dep-1") is None
    daemon.tick()
    assert len(g) == 0 and daemon.bound_hash is None
    with pytest.raises(WatchlistError, match="not on this device"):
        daemon.bind(b.watchlist_hash, "dep-1")


def test_unreadable_index_wipes_everything(env: Env) -> None:
    s = env.store()
    s.import_bundle(env.bundle().data)
    (s.dir / "index.json").write_text("{not json")
    assert env.store().stored() == []
    assert _files(s) == []
    assert env.reasons("watchlist.wiped") == ["index-unreadable"]


def test_wipe_overwrites_before_unlinking(env: Env, tmp_path: Path) -> None:
    s = env.store()
    b = env.bundle()
    s.import_bundle(b.data)
    (f,) = _files(s)
    spy = tmp_path / "second-link"
    os.link(f, spy)  # a second name for the same inode shows what the wipe did to the bytes
    s.wipe(b.watchlist_hash, "operator")
    assert not f.exists()
    assert spy.read_bytes() == bytes(len(b.data))


def test_a_store_that_cannot_write_refuses_in_one_line(env: Env) -> None:
    from agent.matching.watchlist_store import WatchlistStoreError

    s = env.store()
    b = env.bundle()
    # A folder where the sealed file must go fails the write even for root.
    (s.dir / f"{b.watchlist_hash}.lfrwl").mkdir()
    result = s.handle_watchlist_message(b.data)
    assert isinstance(result, WatchlistStoreError)
    assert "cannot store" in str(result) and "\n" not in str(result)


def test_a_wipe_cut_short_is_finished_with_its_reason_at_the_next_open(env: Env) -> None:
    # Power-cut crash point "watchlist wipe overwrite after fsync": the wipe was on record,
    # the file half overwritten, when the power went.
    s = env.store()
    b = env.bundle()
    s.import_bundle(b.data)
    index = json.loads((s.dir / "index.json").read_text())
    index["wiping"] = {b.watchlist_hash: {"reason": "stopped", "deployment_id": "dep-1"}}
    del index["stored"][b.watchlist_hash]
    (s.dir / "index.json").write_text(json.dumps(index))
    (f,) = _files(s)
    f.write_bytes(bytes(len(b.data) // 2) + b.data[len(b.data) // 2 :])
    again = env.store()
    assert _files(again) == [] and again.stored() == []
    wiped = [fields for e, fields in env.events if e == "watchlist.wiped"]
    assert wiped == [
        {
            "watchlist_hash": b.watchlist_hash,
            "deployment_id": "dep-1",
            "reason": "stopped",
            "resumed": True,
        }
    ]
    assert json.loads((s.dir / "index.json").read_text())["wiping"] == {}
    # The wipe stands: the same bundle sent again is older than what the store has seen.
    with pytest.raises(WatchlistError, match="not newer"):
        again.import_bundle(b.data)


def test_a_wipe_is_on_record_before_the_file_is_touched(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = env.store()
    b = env.bundle()
    s.import_bundle(b.data)
    (f,) = _files(s)
    seen: list[dict[str, Any]] = []
    real_shred = watchlist_store._shred

    def shred_watching_the_index(path: Path) -> None:
        # The real overwrite runs; the index is read just before it starts.
        seen.append(json.loads((s.dir / "index.json").read_text()))
        real_shred(path)

    monkeypatch.setattr(watchlist_store, "_shred", shred_watching_the_index)
    s.wipe(b.watchlist_hash, "operator")
    assert seen[0]["wiping"] == {b.watchlist_hash: {"reason": "operator", "deployment_id": "dep-1"}}
    assert b.watchlist_hash not in seen[0]["stored"]
    assert not f.exists()


def test_leftover_temporary_files_of_a_cut_are_destroyed_at_open(env: Env) -> None:
    # Power-cut crash points "watchlist bundle before rename" and "watchlist index after
    # fsync": the temporary files write_atomic left were never cleaned up.
    s = env.store()
    b = env.bundle()
    tmp_bundle = s.dir / f".{b.watchlist_hash}.lfrwl.k3j9x0ab"
    tmp_bundle.write_bytes(b.data[:1000])
    tmp_index = s.dir / ".index.json.zq81mmcd"
    tmp_index.write_text('{"stored": {}')
    env.store()
    assert not tmp_bundle.exists() and not tmp_index.exists()
    assert [f for f in s.dir.iterdir() if f.name not in ("index.json", ".lock")] == []
    assert env.reasons("watchlist.wiped") == ["incomplete-import"]
    # The import never completed: the same bundle is still welcome.
    assert env.store().import_bundle(b.data).status == "stored"
