"""End to end: ``lfr-hub watchlist build`` on real photos, then ``lfr-agent watchlist``
import / status / wipe on a device folder, with real keys, models and audit log."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from support.operator_passphrase import PASSPHRASE

from agent.cli.agent_main import main as agent_main
from agent.cli.hub_main import main as hub_main
from agent.hub.keys.operator_keys import HubKeyStore
from agent.matching.watchlist_store import WatchlistStore
from agent.trust.audit_log import verify_audit_log
from agent.trust.device_keys import EXCHANGE_PUB_FILE, generate_device_keys
from agent.trust.hub_trust_store import HubTrustStore
from agent.vision.model_store import resolve_models

DEVICE = "lfr-test-01"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, shared_data: Path) -> Path:
    root = tmp_path_factory.mktemp("site")
    hub = HubKeyStore.init(root / "hub", "alice", passphrase=PASSPHRASE)
    keys = root / "device" / "keys"
    generate_device_keys(keys)
    hub.export_device_trust(keys)
    (root / "hub" / "devices" / DEVICE).mkdir(parents=True)
    shutil.copy(keys / EXCHANGE_PUB_FILE, root / "hub" / "devices" / DEVICE / EXCHANGE_PUB_FILE)
    photos = root / "photos"
    for ident in ("deepface_id01", "deepface_id03"):
        (photos / ident).mkdir(parents=True)
        for f in sorted((shared_data / "faces" / ident).glob("*.jpg"))[:2]:
            shutil.copy(f, photos / ident / f.name)
    (photos / "pair").mkdir()
    shutil.copy(
        shared_data / "scenes/many_faces/face_recognition__examples_two_people.jpg",
        photos / "pair" / "1.jpg",
    )
    (root / "agent.toml").write_text(
        f'[device]\nid = "{DEVICE}"\n[paths]\nstate_dir = "{root}/device/state"\n'
        f'keys_dir = "{keys}"\nmodels_dir = "{models_dir}"\nruntime_dir = "{root}/run"\n'
    )
    return root


def _build(site: Path, models_dir: Path, out: Path, *extra: str) -> int:
    return hub_main(
        [
            "watchlist",
            "build",
            "--images",
            str(site / "photos"),
            "--device",
            DEVICE,
            "--deployment",
            "dep-7",
            "--out",
            str(out),
            "--hub-dir",
            str(site / "hub"),
            "--models-dir",
            str(models_dir),
            *extra,
        ]
    )


@pytest.mark.slow
def test_build_import_bind_wipe(
    site: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = site / "out" / "dep-7.lfrwl"
    assert _build(site, models_dir, out) == 0
    text = capsys.readouterr().out
    assert "pair/1.jpg (pair): 2 faces found, need exactly one" in text
    assert "accepted 4 of 5 photos (2 subjects); rejected 1" in text
    assert "subjects with no accepted photo (not in the watchlist): pair" in text

    data = out.read_bytes()
    for secret in (b"deepface", b"alice", b"dep-7", b".jpg"):
        assert secret not in data  # names, photos and deployment never travel in clear
    hub_map = json.loads((site / "out" / "dep-7.lfrwl.hub-map.json").read_text())
    assert stat.S_IMODE((site / "out" / "dep-7.lfrwl.hub-map.json").stat().st_mode) == 0o600
    assert sorted(e["subject"] for e in hub_map["refs"].values()) == [
        "deepface_id01",
        "deepface_id03",
    ]
    assert hub_map["rejected"][0]["reasons"] == ["2 faces found, need exactly one"]

    cfg = ["-c", str(site / "agent.toml")]
    assert agent_main(["watchlist", "import", str(out), *cfg]) == 0
    assert f"watchlist {hub_map['watchlist_hash']} stored" in capsys.readouterr().out
    assert agent_main(["watchlist", "status", *cfg]) == 0
    assert "deployment dep-7  4 entries" in capsys.readouterr().out

    # The daemon's view: bind by the hash an activation would name.
    from agent.trust.device_keys import load_device_keys

    keys_dir = site / "device" / "keys"
    store = WatchlistStore(
        site / "device" / "state",
        device_id=DEVICE,
        device_key=load_device_keys(keys_dir).exchange,
        find_signing_key=HubTrustStore.load(keys_dir).watchlist_key_finder,
        model_id=resolve_models(models_dir)["embedder"].model_id,
        model_sha256=resolve_models(models_dir)["embedder"].sha256,
    )
    gallery = store.bind(hub_map["watchlist_hash"], "dep-7")
    assert len(gallery) == 4
    assert sorted(set(gallery.refs)) == sorted(hub_map["refs"])

    assert agent_main(["watchlist", "wipe", *cfg]) == 0
    assert not list((site / "device" / "state" / "watchlists").glob("*.lfrwl"))
    store.tick()
    assert len(gallery) == 0
    events = [
        json.loads(line)["event"]
        for line in (site / "device/state/audit.jsonl").read_text().splitlines()
    ]
    assert [e for e in events if e.startswith("watchlist.")] == [
        "watchlist.loaded",
        "watchlist.wiped",
    ]
    from agent.trust.device_keys import load_device_signing_public

    verify_audit_log(
        (site / "device/state/audit.jsonl").read_bytes(), load_device_signing_public(keys_dir)
    )


@pytest.mark.slow
def test_strict_build_writes_nothing(
    site: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = site / "strict" / "x.lfrwl"
    assert _build(site, models_dir, out, "--strict") == 1
    captured = capsys.readouterr()
    assert "2 faces found" in captured.out
    assert "1 of 5 photos rejected; nothing written (--strict)" in captured.err
    assert not out.exists() and not (site / "strict" / "x.lfrwl.hub-map.json").exists()


def test_bad_arguments_are_one_line_errors(
    site: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = site / "bad.lfrwl"
    assert (
        hub_main(
            [
                "watchlist",
                "build",
                "--images",
                str(site / "photos"),
                "--device",
                "Bad Id",
                "--deployment",
                "d",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "device id 'Bad Id' is not valid" in capsys.readouterr().err
    assert _build(site, models_dir, out, "--device-key", "other=x.pem") == 2
    assert "not in --device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        _build(site, models_dir, out, "--expires", "30d")
    assert exc.value.code == 2
    assert "at most 7d" in capsys.readouterr().err
    assert (
        hub_main(
            [
                "watchlist",
                "build",
                "--images",
                str(site / "photos"),
                "--device",
                "nokey-1",
                "--deployment",
                "d",
                "--out",
                str(out),
                "--hub-dir",
                str(site / "hub"),
            ]
        )
        == 2
    )
    assert "device-x25519-pub.pem: file not found" in capsys.readouterr().err


def test_device_import_of_junk_is_refused_and_audited(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = site / "junk.lfrwl"
    junk.write_bytes(b"LFRWLS01" + b"\x00" * 200)
    cfg = ["-c", str(site / "agent.toml")]
    assert agent_main(["watchlist", "import", str(junk), *cfg]) == 1
    assert "watchlist:" in capsys.readouterr().err
    lines = (site / "device/state/audit.jsonl").read_text().splitlines()
    refused = [json.loads(x) for x in lines if '"watchlist.refused"' in x]
    assert refused and refused[-1]["fields"]["source"] == "file"
    assert agent_main(["watchlist", "import", str(site / "missing.lfrwl"), *cfg]) == 2
