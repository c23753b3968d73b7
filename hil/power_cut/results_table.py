"""The run's results: the table ``make power-cut`` prints and the JSON it writes."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from hil.power_cut.power_cut_run import PointResult
from hil.power_cut.promises import PROMISES, Findings


def promise_counts(results: list[PointResult], final: Findings) -> list[tuple[str, int, int]]:
    """(promise, crash points where it held, where it broke), the final check included
    in the broken count of the alert and hub rows."""
    rows = []
    for promise, _ in PROMISES:
        held = sum(1 for r in results if r.findings.held(promise) is True)
        broken = sum(1 for r in results if r.findings.held(promise) is False)
        if final.held(promise) is False:
            broken += 1
        rows.append((promise, held, broken))
    return rows


def table(
    results: list[PointResult], final: Findings, start_up_s: list[float], command: str
) -> str:
    outcomes = Counter(r.outcome for r in results)
    by_target = Counter(r.target for r in results)
    by_kind = Counter(r.kind for r in results)
    recoveries = [r.recovery_s for r in results if r.recovery_s is not None]
    lines = [
        f"Power cuts on LazyFS: {len(results)} crash points (`{command}`)",
        "",
        f"- where: {by_target['device']} on the camera, {by_target['hub']} on the hub, "
        f"{by_target['enrolment']} during a camera's enrolment",
        f"- how: {by_kind['op']} at an exact file operation (before/after), "
        f"{by_kind['torn-op']} torn writes, {by_kind['torn-seq']} torn write sequences, "
        f"{by_kind['random']} at random moments",
        f"- the fault fired: {outcomes['fired']}; cut at the random moment: {outcomes['random']}; "
        f"fault not reached, cut at the end of the work: {outcomes['not reached']}; "
        f"work stalled, then cut: {outcomes['stalled']}",
        "",
        "| promise | held | broken |",
        "|---|---|---|",
    ]
    for promise, held, broken in promise_counts(results, final):
        lines.append(f"| {promise} | {held} | {broken} |")
    rig = [r for r in results if r.findings.held("rig") is False]
    lines.append("")
    if recoveries:
        slow = max(results, key=lambda r: r.recovery_s or 0.0)
        lines.append(
            f"Start-up after a cut (lfr-agent run to READY=1): median "
            f"{statistics.median(recoveries):.2f} s, slowest {max(recoveries):.2f} s "
            f"(crash point {slow.number}: {slow.label})"
        )
    if rig:
        lines.append(f"Rig errors: {len(rig)} crash points (see results.json)")
    return "\n".join(lines)


def broken_details(results: list[PointResult], final: Findings) -> list[str]:
    out = []
    for r in results:
        for promise, problems in r.findings.problems.items():
            for p in problems:
                out.append(f"crash point {r.number} ({r.label}, {r.outcome}): {promise}: {p}")
    for promise, problems in final.problems.items():
        out += [f"final check: {promise}: {p}" for p in problems]
    return out


def to_json(results: list[PointResult], final: Findings, start_up_s: list[float]) -> dict[str, Any]:
    return {
        "crash_points": [
            {
                "number": r.number,
                "place": r.label,
                "target": r.target,
                "kind": r.kind,
                "outcome": r.outcome,
                "start_up_s": r.recovery_s,
                "seconds": round(r.seconds, 2),
                "problems": r.findings.problems,
                "notes": r.notes,
            }
            for r in results
        ],
        "final": final.problems,
        "promises": {p: {"held": h, "broken": b} for p, h, b in promise_counts(results, final)},
        "start_up_s": start_up_s,
    }


def from_json(data: dict[str, Any]) -> tuple[list[PointResult], Findings, list[float]]:
    """A run's results back from its ``results.json`` (to merge the parts of one plan)."""
    results = [
        PointResult(
            number=int(c["number"]),
            label=str(c["place"]),
            target=str(c["target"]),
            kind=str(c["kind"]),
            outcome=str(c["outcome"]),
            recovery_s=c["start_up_s"],
            findings=Findings({k: list(v) for k, v in c["problems"].items()}),
            notes=list(c["notes"]),
            seconds=float(c["seconds"]),
        )
        for c in data["crash_points"]
    ]
    final = Findings({k: list(v) for k, v in data["final"].items()})
    return results, final, [float(x) for x in data["start_up_s"]]


def merge(
    parts: list[dict[str, Any]],
) -> tuple[list[PointResult], Findings, list[float], list[PointResult]]:
    """The parts of one plan run separately (``--from-point``), as one run: the final
    checks of every part, and each crash point once, from the first part that tried it.
    A point two parts tried is counted once; its other runs are returned apart (the
    fourth value), so that a promise one of them broke is still reported."""
    results: dict[int, PointResult] = {}
    again: list[PointResult] = []
    final = Findings()
    start_up: list[float] = []
    for data in parts:
        r, f, s = from_json(data)
        for point in r:
            if point.number in results:
                again.append(point)
            else:
                results[point.number] = point
        for promise, problems in f.problems.items():
            final.checked(promise, problems)
        start_up += s
    return sorted(results.values(), key=lambda r: r.number), final, start_up, again
