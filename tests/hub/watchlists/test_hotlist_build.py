"""``lfr-hub hotlist build --csv``: rows checked one by one, the sealed hotlist opened by
the device it names (real keys), plates matched by keyed hash, no plate in the bundle."""

from __future__ import annotations

import json
import shutil
import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from support.operator_passphrase import PASSPHRASE

from agent.cli.hub_commands.publish_cmd import classify
from agent.cli.hub_main import main as hub_main
from agent.errors import UsageError
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.hotlist_builder import read_hotlist_csv
from agent.matching.hotlist_bundle import HotlistError, open_hotlist
from agent.plates.hotlist_matcher import HotlistMatcher
from agent.trust.device_keys import EXCHANGE_KEY_FILE, EXCHANGE_PUB_FILE, generate_device_keys
from agent.trust.key_files import load_private_key

DEVICE = "lfr-test-01"
CSV = """plate,reason,category,expiry
AB12 CDE,stolen vehicle report 4411,stolen,
ab12cde,the same plate again,stolen,
M123 ABC,wanted driver,wanted,2099-01-01
NOT A PLATE,bad,bad,
YX99 ABC,lapsed,stolen,2001-01-01
K7 XYZ,no reason,,
A1,short dateless,other,2099-06-30T12:00:00+01:00
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hotlist-site")
    HubKeyStore.init(root / "hub", "alice", passphrase=PASSPHRASE)
    keys = root / "device" / "keys"
    generate_device_keys(keys)
    (root / "hub" / "devices" / DEVICE).mkdir(parents=True)
    shutil.copy(keys / EXCHANGE_PUB_FILE, root / "hub" / "devices" / DEVICE / EXCHANGE_PUB_FILE)
    (root / "plates.csv").write_text(CSV)
    return root


def _build(site: Path, out: Path, *extra: str, csv: Path | None = None) -> int:
    return hub_main(
        [
            "hotlist",
            "build",
            "--csv",
            str(csv or site / "plates.csv"),
            "--device",
            DEVICE,
            "--deployment",
            "dep-plates-1",
            "--out",
            str(out),
            "--hub-dir",
            str(site / "hub"),
            *extra,
        ]
    )


def test_each_bad_row_is_named_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(CSV)
    good, bad = read_hotlist_csv(path, time.time())
    assert [r.plate for r in good] == ["AB12CDE", "M123ABC", "A1"]
    problems = {r.line: r.problem for r in bad}
    assert "already listed on line 2" in problems[3]
    assert "not a UK plate format" in problems[5]
    assert "already lapsed" in problems[6]
    assert "category is empty" in problems[7]
    # The offset in the expiry is honoured (11:00 UTC).
    assert good[2].expires_at == 4086500400.0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("plate,reason\nAB12CDE,x\n", "must start with the header"),
        ("plate,reason,category,expiry\nAB12CDE,x,y,tomorrow\n", None),
    ],
)
def test_bad_files_fail_in_one_line(tmp_path: Path, text: str, problem: str | None) -> None:
    path = tmp_path / "h.csv"
    path.write_text(text)
    if problem is None:
        good, bad = read_hotlist_csv(path, time.time())
        assert not good and "not an ISO 8601 date" in bad[0].problem
        return
    with pytest.raises(UsageError, match=problem):
        read_hotlist_csv(path, time.time())


def test_build_seals_hashes_the_device_opens_and_matches(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dep.lfrhl"
    assert _build(site, out) == 0
    printed = capsys.readouterr().out
    assert "accepted 3 plates; rejected 4 rows" in printed
    assert "✗ line 5:" in printed
    data = out.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for plate in (b"AB12CDE", b"AB12 CDE", b"M123ABC", b"stolen", b"wanted"):
        assert plate not in data
    mapping = json.loads((tmp_path / "dep.lfrhl.hub-map.json").read_text())
    assert stat.S_IMODE((tmp_path / "dep.lfrhl.hub-map.json").stat().st_mode) == 0o600
    plates = {v["plate"]: ref for ref, v in mapping["refs"].items()}
    assert set(plates) == {"AB12 CDE", "M123 ABC", "A 1"}
    signer = HubKeyStore.open(site / "hub").watchlist_signing_key().public_key()
    device_key = load_private_key(
        site / "device" / "keys" / EXCHANGE_KEY_FILE,
        X25519PrivateKey,  # type: ignore[type-abstract]
    )
    opened = open_hotlist(data, DEVICE, device_key, lambda _kid: signer)
    assert opened.watchlist_hash == mapping["hotlist_hash"]
    assert opened.count == 3
    matcher = HotlistMatcher(opened)
    now = time.time()
    assert matcher.match("AB12CDE", now) == plates["AB12 CDE"]
    assert matcher.match("M123ABC", now) == plates["M123 ABC"]
    # A one-character neighbour and the rejected rows are not listed.
    for miss in ("AB12CDF", "YX99ABC", "K7XYZ"):
        assert matcher.match(miss, now) is None
    # lfr-hub publish sends it on the watchlist topic.
    assert classify(data) == "watchlist"
    # Another device's key cannot open it.
    with pytest.raises(HotlistError):
        open_hotlist(data, "lfr-test-02", X25519PrivateKey.generate(), lambda _kid: signer)


def test_strict_writes_nothing_when_a_row_is_bad(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "dep.lfrhl"
    assert _build(site, out, "--strict") == 1
    assert not out.exists()


def test_no_usable_row_is_an_error(site: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("plate,reason,category,expiry\nNOPE,x,y,\n")
    assert _build(site, tmp_path / "x.lfrhl", csv=bad) == 1
    assert not (tmp_path / "x.lfrhl").exists()


def test_unknown_device_and_bad_deployment_are_usage_errors(site: Path, tmp_path: Path) -> None:
    assert (
        hub_main(
            [
                "hotlist",
                "build",
                "--csv",
                str(site / "plates.csv"),
                "--device",
                DEVICE,
                "--deployment",
                "bad id!",
                "--out",
                str(tmp_path / "o"),
                "--hub-dir",
                str(site / "hub"),
            ]
        )
        == 2
    )
