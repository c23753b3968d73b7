"""Where the power is cut: the catalogue of crash points and the plan of a run.

A crash point is a place in the durable-write path (a LazyFS fault: just before or just
after one operation on one kind of file, or a torn write) or a random moment, on the
camera, on the hub, or during a camera's enrolment. The plan of a run of N crash points
walks the catalogue in a seeded random order, so the first ``len(CATALOGUE)`` crash
points of any run each try a different place, and then goes round again with new random
parameters (when in the work the fault is armed, which part of a torn write persists,
when a random cut falls).

Patterns are regular expressions LazyFS matches anywhere in the path it uses for a file
(``l/state/...`` on the camera, ``l/alerts.db`` on the hub): a short, unique tail of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Which machine loses power: the camera, the hub, or a camera being enrolled.
DEVICE, HUB, ENROLMENT = "device", "hub", "enrolment"

#: When in a deployment cycle the fault is armed (see device_cycle.py).
AT_START_UP = "start-up"  # before the agent starts (the fault waits for its recovery)
BEFORE_WATCHLIST = "before-watchlist"
BEFORE_ACTIVATION = "before-activation"
DURING_ALERTS = "during-alerts"
BEFORE_RENEWAL = "before-renewal"
BEFORE_ADJUDICATION = "before-adjudication"  # an operator's outcome, at the hub
BEFORE_END = "before-end"  # before the stop, or before the window or lease runs out
BEFORE_HUB_PURGE = "before-hub-purge"  # a retention purge of the hub's store
ANY_STAGE = "any"  # one of the above, drawn per crash point

STAGES = (BEFORE_WATCHLIST, BEFORE_ACTIVATION, DURING_ALERTS, BEFORE_RENEWAL, BEFORE_END)


@dataclass(frozen=True)
class Place:
    """One place in the catalogue."""

    name: str
    target: str  # DEVICE | HUB | ENROLMENT
    kind: str  # "op" | "torn-op" | "torn-seq" | "random"
    op: str = ""
    timing: str = ""
    pattern: str = ""  # regex (op), or the file the torn fault names (relative, see above)
    stage: str = ANY_STAGE
    #: What the cycle must do so the place is reached.
    needs: frozenset[str] = frozenset()


def _op(name: str, target: str, op: str, pattern: str, stage: str, *needs: str) -> list[Place]:
    return [
        Place(f"{name} {timing} {op}", target, "op", op, timing, pattern, stage, frozenset(needs))
        for timing in ("before", "after")
    ]


_SEQ_TMP = r"state/\.activation-sequence\.json\."
_SEQ = r"state/activation-sequence\.json$"
_ENTRY = r"outbox/\d{20}-\w{32}\.alert$"
_ENTRY_TMP = r"outbox/\.tmp-\d+\.alert$"
_AGED = r"outbox/\d{20}-00a9ed\w{26}\.alert$"
_BUNDLE = r"watchlists/\w{64}\.lfrwl$"
_BUNDLE_TMP = r"watchlists/\.\w{64}\.lfrwl\."
_REPORT = r"reports/pc-\d+-\d+\.json$"
_WAL = r"alerts\.db-wal$"

CATALOGUE: tuple[Place, ...] = (
    # -- the outbox: an alert is durable before it is published ------------------------
    *_op("outbox sequence", DEVICE, "write", r"outbox/\.tmp-sequence$", DURING_ALERTS),
    *_op("outbox sequence", DEVICE, "fsync", r"outbox/\.tmp-sequence$", DURING_ALERTS),
    *_op("outbox sequence", DEVICE, "rename", r"outbox/sequence$", DURING_ALERTS),
    *_op("outbox entry", DEVICE, "write", _ENTRY_TMP, DURING_ALERTS),
    *_op("outbox entry", DEVICE, "fsync", _ENTRY_TMP, DURING_ALERTS),
    *_op("outbox entry", DEVICE, "rename", _ENTRY, DURING_ALERTS),
    *_op("outbox ack delete", DEVICE, "unlink", _ENTRY, DURING_ALERTS),
    *_op("outbox retention purge", DEVICE, "unlink", _AGED, AT_START_UP, "aged-entry"),
    Place("outbox entry torn write", DEVICE, "torn-op", stage=DURING_ALERTS),
    Place("outbox entry torn sequence", DEVICE, "torn-seq", stage=DURING_ALERTS),
    # -- the audit log: appended and fsynced entry by entry -----------------------------
    *_op("audit append", DEVICE, "write", r"state/audit\.jsonl$", ANY_STAGE),
    *_op("audit append", DEVICE, "fsync", r"state/audit\.jsonl$", ANY_STAGE),
    Place("audit append torn write", DEVICE, "torn-op", stage=ANY_STAGE),
    Place("audit append torn sequence", DEVICE, "torn-seq", stage=ANY_STAGE),
    # -- the activation sequence and the revocation list --------------------------------
    *_op("activation sequence", DEVICE, "write", _SEQ_TMP, BEFORE_ACTIVATION),
    *_op("activation sequence", DEVICE, "fsync", _SEQ_TMP, BEFORE_RENEWAL, "renewal"),
    *_op("activation sequence at a stop", DEVICE, "rename", _SEQ, BEFORE_END, "stop"),
    *_op("activation sequence", DEVICE, "rename", _SEQ, BEFORE_ACTIVATION),
    *_op(
        "revocation list",
        DEVICE,
        "fsync",
        r"keys/\.hub-revocations\.json\.",
        BEFORE_ACTIVATION,
        "revocation",
    ),
    *_op(
        "revocation list",
        DEVICE,
        "rename",
        r"keys/hub-revocations\.json$",
        BEFORE_ACTIVATION,
        "revocation",
    ),
    *_op(
        "activation sequence with a revocation",
        DEVICE,
        "rename",
        _SEQ,
        BEFORE_ACTIVATION,
        "revocation",
    ),
    # -- the sealed watchlist: stored whole, wiped at the end ---------------------------
    *_op("watchlist bundle", DEVICE, "write", _BUNDLE_TMP, BEFORE_WATCHLIST),
    *_op("watchlist bundle", DEVICE, "fsync", _BUNDLE_TMP, BEFORE_WATCHLIST),
    *_op("watchlist bundle", DEVICE, "rename", _BUNDLE, BEFORE_WATCHLIST),
    *_op("watchlist index", DEVICE, "fsync", r"watchlists/\.index\.json\.", BEFORE_WATCHLIST),
    *_op("watchlist index", DEVICE, "rename", r"watchlists/index\.json$", ANY_STAGE),
    *_op("watchlist wipe overwrite", DEVICE, "write", _BUNDLE, BEFORE_END, "wipe"),
    *_op("watchlist wipe overwrite", DEVICE, "fsync", _BUNDLE, BEFORE_END, "wipe"),
    *_op("watchlist wipe", DEVICE, "unlink", _BUNDLE, BEFORE_END, "wipe"),
    *_op(
        "watchlist index at a wipe",
        DEVICE,
        "rename",
        r"watchlists/index\.json$",
        BEFORE_END,
        "wipe",
    ),
    Place(
        "watchlist wipe torn write",
        DEVICE,
        "torn-op",
        stage=BEFORE_WATCHLIST,
        needs=frozenset({"wipe"}),
    ),
    # -- the deployment report ------------------------------------------------------------
    *_op("report", DEVICE, "fsync", r"reports/\.pc-\d+-\d+\.json\.", BEFORE_END),
    *_op("report", DEVICE, "rename", _REPORT, BEFORE_END),
    *_op("report sent marker", DEVICE, "create", r"reports/pc-\d+-\d+\.json\.sent$", BEFORE_END),
    *_op("report retention purge", DEVICE, "unlink", _REPORT, AT_START_UP, "aged-report"),
    # -- random moments --------------------------------------------------------------------
    Place("random moment", DEVICE, "random"),
    Place("random moment (a wipe)", DEVICE, "random", needs=frozenset({"wipe"})),
    # -- the hub's alert database (SQLite, write-ahead log) -------------------------------
    *_op("hub store commit", HUB, "write", _WAL, DURING_ALERTS),
    *_op("hub store commit", HUB, "fsync", _WAL, DURING_ALERTS),
    *_op("hub adjudication commit", HUB, "fsync", _WAL, BEFORE_ADJUDICATION, "adjudicate"),
    *_op("hub purge checkpoint", HUB, "fsync", r"alerts\.db$", BEFORE_HUB_PURGE, "hub-purge"),
    *_op("hub purge commit", HUB, "fsync", _WAL, BEFORE_HUB_PURGE, "hub-purge"),
    Place("hub random moment", HUB, "random"),
    # -- enrolment: keys made on the camera, the hub's bundle installed --------------------
    *_op(
        "enrolment signing key",
        ENROLMENT,
        "rename",
        r"t\d+/keys/device-ed25519-key\.pem$",
        ANY_STAGE,
    ),
    *_op(
        "enrolment signing key",
        ENROLMENT,
        "fsync",
        r"t\d+/keys/\.device-ed25519-key\.pem\.",
        ANY_STAGE,
    ),
    *_op(
        "enrolment public key",
        ENROLMENT,
        "rename",
        r"t\d+/keys/device-ed25519-pub\.pem$",
        ANY_STAGE,
    ),
    *_op(
        "enrolment exchange key",
        ENROLMENT,
        "rename",
        r"t\d+/keys/device-x25519-key\.pem$",
        ANY_STAGE,
    ),
    *_op("enrolment TLS key", ENROLMENT, "rename", r"t\d+/keys/device-tls-key\.pem$", ANY_STAGE),
    *_op("enrolment request", ENROLMENT, "rename", r"t\d+/enrol\.request$", ANY_STAGE),
    *_op("enrolment certificate", ENROLMENT, "rename", r"t\d+/keys/device-cert\.pem$", ANY_STAGE),
    *_op("enrolment hub root", ENROLMENT, "rename", r"t\d+/keys/hub-root-pub\.pem$", ANY_STAGE),
    *_op("enrolment config", ENROLMENT, "rename", r"t\d+/agent\.toml$", ANY_STAGE),
    Place("enrolment random moment", ENROLMENT, "random"),
)


@dataclass(frozen=True)
class CrashPoint:
    """One planned power cut: a place and the random parameters of this try."""

    number: int
    place: Place
    stage: str
    alerts_before_arming: int  # DURING_ALERTS: alerts stored at the hub before arming
    random_delay_s: float  # "random": seconds into the work before the cut
    torn_parts: int = 0
    torn_persist: tuple[int, ...] = ()
    end: str = "stop"  # how the deployment ends: stop | expiry | lease
    extras: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        return self.place.name


def plan(n: int, seed: int, only: str = "") -> list[CrashPoint]:
    """N crash points: the catalogue in a seeded order, round after round. ``only``
    (comma-separated) keeps the places whose name contains one of its parts."""
    parts = [o.strip() for o in only.split(",") if o.strip()]
    places = [p for p in CATALOGUE if not parts or any(o in p.name for o in parts)]
    missing = [o for o in parts if not any(o in p.name for p in CATALOGUE)]
    if missing:
        raise ValueError(f"no crash point place has {missing[0]!r} in its name")
    rng = random.Random(seed)
    points: list[CrashPoint] = []
    order: list[Place] = []
    while len(points) < n:
        if not order:
            order = list(places)
            rng.shuffle(order)
        place = order.pop()
        points.append(_parameters(len(points) + 1, place, rng))
    return points


def _parameters(number: int, place: Place, rng: random.Random) -> CrashPoint:
    stage = place.stage if place.stage != ANY_STAGE else rng.choice(STAGES)
    if place.target == DEVICE and place.kind == "random":
        stage = rng.choice(STAGES)
    needs = set(place.needs)
    if "wipe" in needs or "stop" in needs:
        end = rng.choice(("stop", "stop", "expiry")) if "stop" not in needs else "stop"
    else:
        end = rng.choice(("stop", "stop", "stop", "expiry", "lease"))
    if stage == BEFORE_RENEWAL or (end != "lease" and rng.random() < 0.5):
        needs.add("renewal")
    if stage == BEFORE_RENEWAL:
        end = "stop"
    if rng.random() < 0.3:
        needs.add("revocation")
    if rng.random() < 0.25:
        needs.add("adjudicate")
    parts = 0
    persist: tuple[int, ...] = ()
    if place.kind == "torn-op":
        parts = rng.choice((2, 3, 4))
        keep = [p for p in range(1, parts + 1) if rng.random() < 0.5]
        if not keep or len(keep) == parts:
            keep = [rng.randrange(1, parts + 1)]
        persist = tuple(keep)
    elif place.kind == "torn-seq":
        parts = 2
        persist = (rng.choice((1, 2)),)
    return CrashPoint(
        number,
        place,
        stage,
        alerts_before_arming=rng.randrange(0, 3),
        random_delay_s=rng.uniform(0.0, 9.0),
        torn_parts=parts,
        torn_persist=persist,
        end=end,
        extras=frozenset(needs),
    )
