"""The hub's configuration file (``configs/hub.example.toml``), validated with the same
declarative schema as the device config (``agent/config_schema.py``): unknown keys are
errors, every problem is one line naming the key path. Secrets never live here, only
paths to key files."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import MatchingSection
from agent.config_schema import build_section, read_toml, render_sections, spec
from agent.errors import ConfigError

DEFAULT_HUB_CONFIG_PATH = Path("/etc/lfr-hub/hub.toml")
_MATCHING = MatchingSection()  # the cameras' defaults, which calibration must match


@dataclass(frozen=True)
class DatabaseSection:
    """The hub database (alerts, reports, console accounts)."""

    url: str = spec(
        "/var/lib/lfr-hub/alerts.db",
        "A SQLite file path, sqlite:///PATH or postgresql://… (several workers share PostgreSQL).",
    )


@dataclass(frozen=True)
class BrokerSection:
    """The MQTT intake: alerts, their clips, recording segments and reports from the cameras."""

    enabled: bool = spec(True, "Run the alert and report receiver in this process.")
    address: str = spec(
        "localhost:8883", "Broker HOST:PORT (TLS).", pattern=r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$"
    )
    pki_dir: Path = spec(Path("/etc/lfr-hub/pki"), "PKI folder holding ca.pem and clients/.")
    identity: str = spec(
        "main",
        "Hub identity of this process: certificate CN hub.NAME (one per process).",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
    )
    share_group: str = spec(
        "",
        "MQTT v5 shared-subscription group: workers of one group split the alerts; empty for one worker.",
        pattern=r"^([a-z0-9][a-z0-9-]{0,30})?$",
    )
    alert_key: Path = spec(
        Path("/etc/lfr-hub/keys/hub-alert-x25519-key.pem"),
        "Hub alert X25519 private key that opens sealed alerts.",
    )
    evidence_key: str = spec(
        "",
        "Hub evidence X25519 private key (PEM path): recording segments a camera sends on request are checked to decrypt and play before they are stored; empty: segments are refused (clips need only the alert key).",
        pattern=r"^(/[^\x00]*)?$",
        example="/etc/lfr-hub/keys/hub-evidence-x25519-key.pem",
    )
    retention_days: float = spec(
        31.0, "Alerts older than this are refused at receipt and purged.", min=1, max=3650
    )
    purge_every_s: float = spec(3600.0, "How often the retention purge runs.", min=10, max=86400)


@dataclass(frozen=True)
class ConsoleSection:
    """The web console, served over HTTPS only."""

    enabled: bool = spec(True, "Serve the web console in this process.")
    listen_host: str = spec("127.0.0.1", "Address to listen on (0.0.0.0 for every interface).")
    port: int = spec(8443, "TCP port of the HTTPS console.", min=1, max=65535)
    tls_cert: Path = spec(
        Path("/etc/lfr-hub/pki/console-cert.pem"),
        "Console TLS certificate (PEM, from the hub's private CA).",
    )
    tls_key: Path = spec(Path("/etc/lfr-hub/pki/console-key.pem"), "Its private key (PEM, 0600).")
    session_idle_min: float = spec(
        15.0, "A session unused for this long is logged out.", min=1, max=720
    )
    session_max_h: float = spec(
        12.0, "A session ends this long after login, used or not (one shift).", min=0.5, max=72
    )
    login_max_failures: int = spec(
        5, "Failed logins in a row before the account is locked.", min=1, max=100
    )
    lockout_min: float = spec(15.0, "How long a locked account refuses logins.", min=1, max=10080)


@dataclass(frozen=True)
class WatchlistsSection:
    """Where the hub keeps what 'lfr-hub watchlist build' wrote for the hub."""

    maps_dir: Path = spec(
        Path("/var/lib/lfr-hub/watchlists"),
        "Folder of the hub maps (*.hub-map.json): the review page shows the entry's subject, category and reference photos from them.",
    )


@dataclass(frozen=True)
class KeysSection:
    """The hub key folder the console signs activations, renewals and stops from."""

    dir: str = spec(
        "",
        "Hub key folder (lfr-hub keys init --dir): a console user unlocks, with its passphrase, the operator key of the same name, for that session only; empty: the console signs nothing.",
        pattern=r"^(/[^\x00]*)?$",
        example="/etc/lfr-hub/keys",
    )


@dataclass(frozen=True)
class CalibrationSection:
    """Console plans stated as a target false-alert rate: the threshold is calibrated on these faces."""

    cohort: list[Path] = spec(
        [],
        "Non-mated faces (people known not to be on any watchlist): .npz files of embeddings, labelled <identity>/<image> folders or folders of photos. Loaded once per model and kept in memory while the service runs (photos are embedded then, which may take minutes). Empty: plans must give a raw threshold.",
    )
    models_dir: Path = spec(
        Path("/var/lib/lfr-hub/models"),
        "Pinned models, to embed cohort photos (not needed for .npz cohorts).",
    )
    score: str = spec(
        "auto",
        "Score kind of calibrated thresholds: auto (S-norm, or cosine for a watchlist too small to normalise against), snorm or cosine.",
        choices=("auto", "snorm", "cosine"),
    )
    floor: float = spec(
        _MATCHING.threshold_floor,
        "The cameras' matching.threshold_floor: no alert below this cosine.",
        min=0,
        max=1,
    )
    top_k: int = spec(_MATCHING.top_k, "The cameras' matching.top_k.", min=1, max=50)


@dataclass(frozen=True)
class HoldSection:
    """Officers-present hold: renewals only while officers confirm from an unlocked session."""

    confirm_every_s: float = spec(
        120.0,
        "A confirmation ('Officers present') keeps renewals going for this long.",
        min=10,
        max=3600,
    )
    renew_every_s: float = spec(
        60.0, "How often a held deployment's lease is renewed.", min=1, max=3600
    )
    lease_s: int = spec(
        300,
        "Lease each renewal (and console activation) grants: the camera closes this long after the last one it applied. At least 3 × renew_every_s.",
        min=10,
        max=86400,
    )


@dataclass(frozen=True)
class AuditSection:
    """The hub audit log: hash-chained, with checkpoints signed by the hub audit key."""

    log: Path = spec(Path("/var/lib/lfr-hub/audit/hub-audit.jsonl"), "The hub audit log file.")
    signing_key: Path = spec(
        Path("/etc/lfr-hub/keys/hub-audit-ed25519-key.pem"),
        "Ed25519 key signing its checkpoints (lfr-hub audit key --out PATH makes one).",
    )
    checkpoint_every: int = spec(
        20, "A signed checkpoint at least every this many entries.", min=1, max=10000
    )


@dataclass(frozen=True)
class LoggingSection:
    """Log output of the service."""

    level: str = spec("info", "Log level.", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class HubConfig:
    database: DatabaseSection = field(default_factory=DatabaseSection)
    broker: BrokerSection = field(default_factory=BrokerSection)
    console: ConsoleSection = field(default_factory=ConsoleSection)
    watchlists: WatchlistsSection = field(default_factory=WatchlistsSection)
    keys: KeysSection = field(default_factory=KeysSection)
    calibration: CalibrationSection = field(default_factory=CalibrationSection)
    hold: HoldSection = field(default_factory=HoldSection)
    audit: AuditSection = field(default_factory=AuditSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    source: Path | None = None


SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(HubConfig)[f.name]
    for f in dataclasses.fields(HubConfig)
    if f.name != "source"
}


def parse_hub_config(raw: dict[str, Any], source: Path | None = None) -> HubConfig:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    problems: list[str] = [f"{key}: unknown section" for key in raw if key not in SECTIONS]
    sections = {
        name: build_section(name, cls, raw[name], problems)
        for name, cls in SECTIONS.items()
        if name in raw
    }
    if not problems:
        c = sections.get("console")
        if c is not None and c.session_idle_min > c.session_max_h * 60:
            problems.append("console.session_idle_min: must not exceed console.session_max_h")
        h = sections.get("hold")
        if h is not None and h.lease_s < 3 * h.renew_every_s:
            # Renewed well before the lease ends: two lost renewals in a row still do not
            # close a camera whose officers are present.
            problems.append("hold.lease_s: must be at least 3 × hold.renew_every_s")
    if problems:
        raise ConfigError(problems)
    return HubConfig(**sections, source=source)


def load_hub_config(path: Path) -> HubConfig:
    return parse_hub_config(read_toml(path), source=path)


def render_hub_example() -> str:
    header = [
        "# lfr-hub configuration (lfr-hub serve --config FILE). Every key is listed with its",
        "# default value. Generated by 'lfr-hub config example'; checked by 'lfr-hub config check FILE'.",
        "# Unknown keys are errors. Secrets never go here, only paths to key files.",
    ]
    return render_sections(header, SECTIONS)
