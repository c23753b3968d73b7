"""The rig description: one TOML file saying what is under test and how it is wired.

Sections (every key optional unless marked)::

    [rig]       name, kind = "virtual" | "real"
    [device]    id; where = "local" (a child process on this machine) | "ssh";
                ssh = "user@host" (where = "ssh"); state_dir, helper (real rig: the
                device's state folder and the root helper the rig may run with sudo)
    [broker]    where = "local" (a mosquitto the rig starts) | "remote";
                host, port, ca_file, cert_file, key_file (remote: the hub's client files)
    [hub]       hub_dir, operator (real rig: the operator key store that enrolled the device
                and the operator who signs the rig's activations)
    [network]   isolation = "auto" | "netns" | "loopback"; partition_s
    [feed]      kind = "replay" (synthetic scene played as the camera) | "monitor"
                (a real camera looking at a screen that shows the scene);
                fps, width, height, seconds, passes, seed,
                watched, passers_by, distractors (identities under the faces folder)
    [scenarios] run = [scenario names, in order]
    [short]     overrides for ``--short``: seconds, passes, partition_s, run

Problems are reported as one line naming the key, like the agent's own config.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.errors import UsageError

SCENARIO_NAMES = (
    "activation_compliance",
    "alert_latency",
    "detection_quality",
    "faults",
    "retention",
    "privacy",
)

_KEYS: dict[str, set[str]] = {
    "rig": {"name", "kind"},
    "device": {"id", "where", "ssh", "state_dir", "helper"},
    "broker": {"where", "host", "port", "ca_file", "cert_file", "key_file"},
    "hub": {"hub_dir", "operator"},
    "network": {"isolation", "partition_s"},
    "feed": {
        "kind",
        "fps",
        "width",
        "height",
        "seconds",
        "passes",
        "seed",
        "watched",
        "passers_by",
        "distractors",
    },
    "scenarios": {"run"},
    "short": {"seconds", "passes", "partition_s", "run"},
}


@dataclass(frozen=True)
class DeviceSpec:
    id: str = "lfr-hil-01"
    where: str = "local"
    ssh: str = ""
    state_dir: str = "/var/lib/lfr-agent"
    helper: str = "/usr/local/sbin/lfr-hil-helper"  # hil/rigs/lfr-hil-helper, installed


@dataclass(frozen=True)
class BrokerSpec:
    where: str = "local"
    host: str = ""
    port: int = 8883
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class FeedSpec:
    kind: str = "replay"
    fps: int = 10
    width: int = 640
    height: int = 480
    seconds: float = 6.0
    passes: int = 3
    seed: int = 3
    watched: tuple[str, ...] = ("deepface_id01", "deepface_id02")
    passers_by: tuple[str, ...] = ("deepface_id10", "deepface_id11")
    distractors: tuple[str, ...] = ("deepface_id05",)


@dataclass(frozen=True)
class RigDescription:
    path: Path
    name: str = "rig"
    kind: str = "virtual"
    device: DeviceSpec = DeviceSpec()
    broker: BrokerSpec = BrokerSpec()
    hub_dir: str = ""
    hub_operator: str = ""
    isolation: str = "auto"
    partition_s: float = 10.0
    feed: FeedSpec = FeedSpec()
    scenarios: tuple[str, ...] = SCENARIO_NAMES
    short: dict[str, Any] | None = None

    def shortened(self) -> RigDescription:
        """The ``--short`` form: the overrides of the [short] section applied."""
        s = self.short or {}
        feed = replace(
            self.feed,
            seconds=float(s.get("seconds", self.feed.seconds)),
            passes=int(s.get("passes", self.feed.passes)),
        )
        return replace(
            self,
            feed=feed,
            partition_s=float(s.get("partition_s", self.partition_s)),
            scenarios=tuple(s.get("run", self.scenarios)),
        )


class _Reader:
    """Typed access to one section, collecting every problem found."""

    def __init__(self, section: str, table: dict[str, Any], problems: list[str]) -> None:
        self.section, self.table, self.problems = section, table, problems
        for key in table:
            if key not in _KEYS[section]:
                problems.append(f"[{section}] {key}: unknown key")

    def _bad(self, key: str, what: str) -> None:
        self.problems.append(f"[{self.section}] {key}: {what}")

    def text(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            self._bad(key, f"must be a string, got {type(value).__name__}")
            return default
        if choices and value not in choices:
            self._bad(key, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._bad(key, f"must be a number, got {type(value).__name__}")
            return default
        if not lo <= value <= hi:
            self._bad(key, f"must be within {lo:g}..{hi:g}, got {value}")
            return default
        return float(value)

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self._bad(key, f"must be an integer, got {type(value).__name__}")
            return default
        if not lo <= value <= hi:
            self._bad(key, f"must be within {lo}..{hi}, got {value}")
            return default
        return value

    def names(
        self, key: str, default: tuple[str, ...], allowed: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        value = self.table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self._bad(key, "must be a list of non-empty strings")
            return default
        if len(set(value)) != len(value):
            self._bad(key, "must not repeat a name")
        for v in value:
            if allowed and v not in allowed:
                self._bad(key, f"unknown scenario {v!r} (known: {', '.join(allowed)})")
        return tuple(value)


def parse_rig(data: dict[str, Any], path: Path) -> RigDescription:
    problems: list[str] = []
    for section, table in data.items():
        if section not in _KEYS:
            problems.append(f"[{section}]: unknown section")
        elif not isinstance(table, dict):
            problems.append(f"[{section}]: must be a table")

    def reader(section: str) -> _Reader:
        table = data.get(section, {})
        return _Reader(section, table if isinstance(table, dict) else {}, problems)

    r = reader("rig")
    name = r.text("name", "rig")
    kind = r.text("kind", "virtual", ("virtual", "real"))

    d = reader("device")
    device = DeviceSpec(
        id=d.text("id", DeviceSpec.id),
        where=d.text("where", "local", ("local", "ssh")),
        ssh=d.text("ssh", ""),
        state_dir=d.text("state_dir", DeviceSpec.state_dir),
        helper=d.text("helper", DeviceSpec.helper),
    )
    b = reader("broker")
    broker = BrokerSpec(
        where=b.text("where", "local", ("local", "remote")),
        host=b.text("host", ""),
        port=b.integer("port", 8883, 1, 65535),
        ca_file=b.text("ca_file", ""),
        cert_file=b.text("cert_file", ""),
        key_file=b.text("key_file", ""),
    )
    h = reader("hub")
    hub_dir = h.text("hub_dir", "")
    hub_operator = h.text("operator", "")
    n = reader("network")
    isolation = n.text("isolation", "auto", ("auto", "netns", "loopback"))
    partition_s = n.number("partition_s", 10.0, 1.0, 600.0)
    f = reader("feed")
    feed = FeedSpec(
        kind=f.text("kind", "replay", ("replay", "monitor")),
        fps=f.integer("fps", FeedSpec.fps, 1, 60),
        width=f.integer("width", FeedSpec.width, 160, 1920),
        height=f.integer("height", FeedSpec.height, 120, 1080),
        seconds=f.number("seconds", FeedSpec.seconds, 2.0, 120.0),
        passes=f.integer("passes", FeedSpec.passes, 1, 50),
        seed=f.integer("seed", FeedSpec.seed, 0, 2**31 - 1),
        watched=f.names("watched", FeedSpec.watched),
        passers_by=f.names("passers_by", FeedSpec.passers_by),
        distractors=f.names("distractors", FeedSpec.distractors),
    )
    scenarios = reader("scenarios").names("run", SCENARIO_NAMES, SCENARIO_NAMES)
    s = reader("short")
    short: dict[str, Any] = {}
    if "seconds" in s.table:
        short["seconds"] = s.number("seconds", feed.seconds, 2.0, 120.0)
    if "passes" in s.table:
        short["passes"] = s.integer("passes", feed.passes, 1, 50)
    if "partition_s" in s.table:
        short["partition_s"] = s.number("partition_s", partition_s, 1.0, 600.0)
    if "run" in s.table:
        short["run"] = s.names("run", scenarios, SCENARIO_NAMES)

    # Cross-field rules.
    if not feed.watched:
        problems.append("[feed] watched: at least one watchlist identity is needed")
    people = [*feed.watched, *feed.passers_by, *feed.distractors]
    twice = sorted({p for p in people if people.count(p) > 1})
    if twice:
        problems.append(
            f"[feed] {', '.join(twice)}: an identity may be in only one of "
            "watched, passers_by, distractors"
        )
    if device.where == "ssh" and not device.ssh:
        problems.append('[device] ssh: required when where = "ssh" (e.g. "lfr@10.0.0.5")')
    if kind == "virtual":
        if device.where != "local":
            problems.append('[device] where: a virtual rig runs the device locally ("local")')
        if broker.where != "local":
            problems.append('[broker] where: a virtual rig starts its own broker ("local")')
        if feed.kind != "replay":
            problems.append('[feed] kind: a virtual rig replays the scene ("replay")')
    else:
        if device.where != "ssh":
            problems.append('[device] where: a real rig reaches its device over "ssh"')
        if broker.where != "remote":
            problems.append('[broker] where: a real rig uses the site broker ("remote")')
        for key in ("host", "ca_file", "cert_file", "key_file"):
            if broker.where == "remote" and not getattr(broker, key):
                problems.append(f"[broker] {key}: required for a remote broker")
        if not hub_dir:
            problems.append("[hub] hub_dir: required for a real rig (the operator key store)")
        if not hub_operator:
            problems.append("[hub] operator: required for a real rig (who signs activations)")
    if problems:
        raise UsageError(f"rig {path}: " + "; ".join(problems))
    return RigDescription(
        path=path,
        name=name,
        kind=kind,
        device=device,
        broker=broker,
        hub_dir=hub_dir,
        hub_operator=hub_operator,
        isolation=isolation,
        partition_s=partition_s,
        feed=feed,
        scenarios=scenarios,
        short=short,
    )


def load_rig(path: Path) -> RigDescription:
    """Read and validate a rig description; every problem in one line (``UsageError``)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"rig {path}: cannot read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"rig {path}: not valid TOML ({exc})") from None
    return parse_rig(data, path)
