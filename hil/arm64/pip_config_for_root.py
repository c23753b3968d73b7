"""Give the arm64 root the same network-facing pip settings as this host.

Reads the host's effective pip configuration (``pip config list``, which
includes PIP_* environment variables) and writes ``ROOT/etc/pip.conf``.
Index URLs on the network are kept; ``file://`` indexes and local
find-links folders are host paths that do not exist in the root and are left
out.  A constraints file is copied to the same path inside the root.

Usage: python pip_config_for_root.py ROOT
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

KEPT = (
    "index-url",
    "extra-index-url",
    "trusted-host",
    "proxy",
    "timeout",
    "default-timeout",
    "retries",
    "disable-pip-version-check",
)
ROOT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def host_settings() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    settings: dict[str, str] = {}
    # Environment entries (":env:.key") are read last so that they win, as in pip.
    for line in sorted(out.splitlines(), key=lambda ln: ln.startswith(":env:")):
        key, _, value = line.partition("=")
        settings[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    return settings


def network_urls(value: str) -> str:
    return " ".join(u for u in value.split() if u.startswith(("http://", "https://")))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: pip_config_for_root.py ROOT", file=sys.stderr)
        return 2
    root = Path(argv[0])
    settings = host_settings()
    lines = ["[global]", f"cert = {ROOT_CA_BUNDLE}"]
    for key in KEPT:
        value = settings.get(key, "")
        if key.endswith("index-url"):
            value = network_urls(value)
        if value:
            lines.append(f"{key} = {value}")
    constraint = settings.get("constraint", "")
    if constraint and Path(constraint).is_file():
        target = root / constraint.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(constraint, target)
        lines.append(f"constraint = {constraint}")
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "pip.conf").write_text("\n".join(lines) + "\n")
    print(f"pip.conf for the root: {', '.join(ln.split(' =')[0] for ln in lines[1:])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
