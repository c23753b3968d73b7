"""What the soak samples, in what unit, and the budget each resource must keep.

Two tables: ``full`` for runs of an hour or more (the verdict the issue asks for: RSS
grows by less than 5 % in 12 h, descriptors and threads flat, the state folder bounded),
and ``short`` for the 10-minute CI form. A short run fits its line through five minutes
and projects it 144-fold to 12 h, so sampling noise alone moves its projection about
fifteen times as far as an hour's: its bounds are wider and catch gross leaks (per
frame, per alert, per renewal) only. The long run is the one that proves a shift.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.soak.growth_verdict import Budget

FULL, SHORT = "full", "short"
#: Runs shorter than this are judged against the short table unless told otherwise.
FULL_FROM_H = 1.0


@dataclass(frozen=True)
class Resource:
    name: str  # "<part>.<figure>", the key in every series and report
    label: str  # for people: the plot panel's title
    unit: str
    full: Budget
    short: Budget

    def budget(self, table: str) -> Budget:
        return self.full if table == FULL else self.short


#: Rates sampled over 10 s intervals: slopes forgiven this many standard errors of noise.
RATE_NOISE_SE = 2.0
#: Memory in the short form: five minutes of a 40-s sawtooth fit a slope only to tens of
#: MB in 12 h; the short form catches gross leaks, which stand far beyond that.
SHORT_LEVEL_NOISE_SE = 2.0


def _proc(part: str, who: str) -> list[Resource]:
    """The figures /proc gives for one process, with the same budgets for each."""
    return [
        Resource(
            f"{part}.rss_mb",
            f"{who} RSS",
            "MB",
            Budget("relative", 5),
            Budget("relative", 60, noise_se=SHORT_LEVEL_NOISE_SE),
        ),
        # Anonymous RSS (heap, stacks, anonymous maps) is where a leak lands. PSS divides
        # shared pages (libc, libpython, the ONNX runtime) among every process that maps
        # them, other people's included, and USS counts a library page as private only
        # while no other process maps that file: both move when unrelated processes start
        # or stop, so they are shown but not judged.
        Resource(
            f"{part}.anon_mb",
            f"{who} anonymous RSS",
            "MB",
            Budget("relative", 5),
            Budget("relative", 60, noise_se=SHORT_LEVEL_NOISE_SE),
        ),
        Resource(f"{part}.pss_mb", f"{who} PSS", "MB", Budget("info"), Budget("info")),
        Resource(f"{part}.uss_mb", f"{who} USS", "MB", Budget("info"), Budget("info")),
        Resource(
            f"{part}.cpu_pct",
            f"{who} CPU",
            "% core",
            Budget("relative", 25, noise_se=RATE_NOISE_SE, rate=True),
            Budget("relative", 300, noise_se=RATE_NOISE_SE, rate=True),
        ),
        # Counts a process holds are judged on their floor (see growth_verdict): a thread
        # that lives a moment (a reconnect) is not a leak, one that stays is.
        Resource(
            f"{part}.fds",
            f"{who} open fds",
            "fds",
            Budget("absolute", 2, floor=True),
            Budget("absolute", 24, floor=True),
        ),
        Resource(
            f"{part}.threads",
            f"{who} threads",
            "threads",
            Budget("absolute", 1, floor=True),
            Budget("absolute", 12, floor=True),
        ),
        Resource(
            f"{part}.log_lines_per_min",
            f"{who} log lines/min",
            "lines/min",
            Budget("relative", 50, noise_se=RATE_NOISE_SE, rate=True),
            Budget("relative", 600, noise_se=RATE_NOISE_SE, rate=True),
        ),
    ]


INFO = Budget("info")

RESOURCES: tuple[Resource, ...] = (
    *_proc("daemon", "daemon"),
    Resource(
        "device.fps",
        "frames processed/s",
        "fps",
        Budget("decline", 10, noise_se=RATE_NOISE_SE, rate=True),
        Budget("decline", 60, noise_se=RATE_NOISE_SE, rate=True),
    ),
    Resource("device.frames", "frames processed (total)", "frames", INFO, INFO),
    Resource("device.dropped_frames", "frames dropped (total)", "frames", INFO, INFO),
    # The outbox fills and drains with every alert; what it never gives back is its floor.
    Resource(
        "device.outbox_files",
        "outbox entries",
        "files",
        Budget("absolute", 20, floor=True),
        Budget("absolute", 120, floor=True),
    ),
    Resource(
        "device.outbox_mb",
        "outbox bytes",
        "MB",
        Budget("absolute", 4, floor=True),
        Budget("absolute", 24, floor=True),
    ),
    Resource(
        "device.state_mb", "state folder", "MB", Budget("absolute", 64), Budget("absolute", 384)
    ),
    Resource("device.audit_mb", "audit log", "MB", Budget("absolute", 32), Budget("absolute", 192)),
    Resource("alerts.sealed", "alerts sealed (total)", "alerts", INFO, INFO),
    Resource("alerts.stored", "alerts stored at hub (total)", "alerts", INFO, INFO),
    Resource("alerts.adjudicated", "alerts adjudicated (total)", "alerts", INFO, INFO),
    *_proc("hub", "hub"),
    # The hub keeps each alert's face crop and scene (about 0.03 MB) and its evidence clip
    # (pre-roll and post-roll, about 0.32 MB at the soak scene's size), plus rows and
    # indexes: about 0.35 MB an alert by design. The budget leaves room for that and no
    # more: a clip's transfer chunks kept after it is assembled would double it.
    Resource(
        "hub.db_mb",
        "hub database",
        "MB",
        Budget("per", 0.5, per="alerts.stored"),
        Budget("per", 0.6, per="alerts.stored"),
    ),
    Resource("broker.rss_mb", "broker RSS", "MB", INFO, INFO),
    Resource("broker.fds", "broker open fds", "fds", INFO, INFO),
    Resource("broker.cpu_pct", "broker CPU", "% core", INFO, INFO),
)

BY_NAME = {r.name: r for r in RESOURCES}


def table_for(hours: float, chosen: str | None = None) -> str:
    """The budget table a run of ``hours`` is judged against."""
    if chosen is not None:
        return chosen
    return FULL if hours >= FULL_FROM_H else SHORT
