"""``lfr-hub serve`` as a process: it serves the console over HTTPS only (the hub CA's
certificate), stops cleanly on SIGTERM, and its audit log verifies afterwards."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.hub_console import HubSetup, make_hub

pytestmark = [pytest.mark.system, pytest.mark.slow]


def lfr_hub(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli.hub_main", *args]


def wait_https(hub: HubSetup, proc: subprocess.Popen[bytes], timeout: float = 60) -> bytes:
    ctx = ssl.create_default_context(cafile=str(hub.root / "pki" / "ca.pem"))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{hub.url}/login", context=ctx, timeout=5) as r:
                return bytes(r.read())
        except (urllib.error.URLError, ConnectionError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_serve_https_and_graceful_sigterm(tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    proc = subprocess.Popen(lfr_hub("serve", "--config", str(hub.config)))
    try:
        assert b"Log in" in wait_https(hub, proc)
        # Plain HTTP on the same port is not served.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/login", timeout=5).read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    verify = subprocess.run(
        lfr_hub("audit", "verify", "--config", str(hub.config)), capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
    assert "verified" in verify.stdout
    text = hub.audit_log.read_text()
    assert '"service.started"' in text and '"service.stopped"' in text


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "hub.toml"
    bad.write_text("[console]\nport = 99999\n")
    r = subprocess.run(lfr_hub("serve", "--config", str(bad)), capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "lfr-hub: error: console.port: must be 1–65535, got 99999"


def test_user_commands(tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    cfg = ["--config", str(hub.config)]
    add = subprocess.run(
        lfr_hub("user", "add", "newop", "--role", "operator", "--password-stdin", *cfg),
        input="a very long password\n",
        capture_output=True,
        text=True,
    )
    assert add.returncode == 0, add.stderr
    assert "otpauth://totp/" in add.stdout
    dup = subprocess.run(
        lfr_hub("user", "add", "newop", "--role", "operator", "--password-stdin", *cfg),
        input="a very long password\n",
        capture_output=True,
        text=True,
    )
    assert dup.returncode == 2 and "already exists" in dup.stderr
    assert subprocess.run(lfr_hub("user", "disable", "newop", *cfg)).returncode == 0
    listing = subprocess.run(lfr_hub("user", "list", *cfg), capture_output=True, text=True)
    assert any(
        line.split()[:3] == ["newop", "operator", "disabled"]
        for line in listing.stdout.splitlines()
    )
    audit = hub.audit_log.read_text()
    assert '"user.added"' in audit and '"user.disabled"' in audit


def test_a_key_folder_that_is_not_one_is_one_line(tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    with hub.config.open("a") as config:
        config.write(f'\n[keys]\ndir = "{tmp_path / "nokeys"}"\n')
    r = subprocess.run(
        lfr_hub("serve", "--config", str(hub.config)), capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith(
        f"lfr-hub: error: keys: {tmp_path / 'nokeys'}: no hub key store"
    )
    assert len(r.stderr.strip().splitlines()) == 1
