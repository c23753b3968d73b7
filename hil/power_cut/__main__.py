"""``python -m hil.power_cut --points N --out DIR``: power cuts proven on LazyFS.

Builds the site (broker, hub, one camera) with the camera's state and the hub's store on
LazyFS, runs N crash points (see crash_points.py), checks every promise after each, and
prints the table. Writes ``DIR/report.md`` (the table and every broken promise) and
``DIR/results.json``. Exit code 0: every promise held at every crash point; 1: one broke;
2: bad usage or this machine cannot run LazyFS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hil.power_cut.crash_points import plan
from hil.power_cut.lazyfs_mount import LazyFsError, find_binary, fuse_usable
from hil.power_cut.power_cut_run import PowerCutRun, say
from hil.power_cut.power_cut_site import PowerCutSite
from hil.power_cut.results_table import broken_details, merge, table, to_json

REPO_ROOT = Path(__file__).resolve().parents[2]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.power_cut", description=__doc__)
    ap.add_argument("--points", type=int, default=50, help="crash points to try (default 50)")
    ap.add_argument("--seed", type=int, default=22, help="seed of the plan (default 22)")
    ap.add_argument(
        "--only",
        default="",
        help="only the places whose name contains this (comma-separated: any of them)",
    )
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "var" / "power-cut")
    ap.add_argument("--models-dir", type=Path, default=REPO_ROOT / "var" / "models")
    ap.add_argument(
        "--shared-data",
        type=Path,
        default=Path(os.environ.get("LFR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")),
    )
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop starting crash points after this many minutes; the table then says how "
        "many of N were tried (default: no limit)",
    )
    ap.add_argument(
        "--from-point",
        type=int,
        default=1,
        metavar="K",
        help="start at crash point K of the plan (the rest of a run stopped by its time "
        "budget; join the parts with --merge)",
    )
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="join the results.json of runs that each tried part of one plan into one table "
        "in --out (runs nothing)",
    )
    args = ap.parse_args(argv)
    if args.merge:
        return _merge(args.merge, args.out.resolve(), args.points, args.seed)
    if args.points < 1:
        print("power cut: --points must be at least 1", file=sys.stderr)
        return 2
    why = fuse_usable()
    if why is not None:
        print(f"power cut: {why}", file=sys.stderr)
        return 2
    try:
        find_binary()
    except LazyFsError as exc:
        print(f"power cut: {exc}", file=sys.stderr)
        return 2
    if not (args.shared_data / "faces").is_dir():
        print(f"power cut: test photos not found at {args.shared_data}", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    out.mkdir(parents=True, exist_ok=True)
    command = f"make power-cut N={args.points}" + (f" SEED={args.seed}" if args.seed != 22 else "")
    if args.max_minutes:
        command += f" MAX_MINUTES={args.max_minutes:g}"
    if args.only:
        command = f"python -m hil.power_cut --points {args.points} --seed {args.seed} --only {args.only!r}"
    try:
        points = plan(args.points, args.seed, args.only)
    except ValueError as exc:
        print(f"power cut: {exc}", file=sys.stderr)
        return 2
    if not 1 <= args.from_point <= len(points):
        print(f"power cut: --from-point must be 1–{len(points)}", file=sys.stderr)
        return 2
    if args.from_point > 1:
        command += f" --from-point {args.from_point}"
        points = [p for p in points if p.number >= args.from_point]
    # A stop (Ctrl-C, or SIGTERM from a CI timeout; a background job ignores SIGINT) must
    # still unmount LazyFS and end the site's processes: both become KeyboardInterrupt,
    # which the site's clean-up runs through.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    t0 = time.monotonic()
    stopped_at = 0
    say(f"building the site in {work}")
    site = PowerCutSite(work, args.models_dir.resolve(), args.shared_data.resolve())
    run = PowerCutRun(site)
    try:
        run.start()
        for cp in points:
            if args.max_minutes and time.monotonic() - t0 > args.max_minutes * 60:
                stopped_at = cp.number - 1
                say(f"time budget of {args.max_minutes:g} min spent: stopping")
                break
            r = run.try_point(cp)
            bad = [p for p, probs in r.findings.problems.items() if probs]
            say(
                f"{cp.number:4d}/{len(points)} {cp.place.target:9s} {cp.label:48s} "
                f"{r.outcome:11s} start-up {r.recovery_s or 0:5.2f} s  "
                + ("ok" if not bad else "BROKEN: " + ", ".join(bad))
            )
            for promise in bad:
                for problem in r.findings.problems[promise]:
                    say(f"     {promise}: {problem}")
        final = run.finish()
    finally:
        site.close()
    text = table(run.results, final, run.start_up_s, command)
    details = broken_details(run.results, final)
    minutes = (time.monotonic() - t0) / 60
    report = text + f"\n\nRun time: {minutes:.1f} min.\n"
    if stopped_at:
        report += (
            f"\nStopped at the time budget (--max-minutes {args.max_minutes:g}): "
            f"crash points {points[0].number}–{stopped_at} of the plan's {args.points} were "
            f"tried (the rest: --from-point {stopped_at + 1}).\n"
        )
    if details:
        report += "\nBroken promises:\n\n" + "\n".join(f"- {d}" for d in details) + "\n"
    (out / "report.md").write_text(report, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(to_json(run.results, final, run.start_up_s), indent=1) + "\n", encoding="utf-8"
    )
    print()
    print(report)
    return 1 if details else 0


def _merge(dirs: list[Path], out: Path, n: int, seed: int) -> int:
    """One table from the parts of one plan (each DIR holds a run's results.json)."""
    try:
        parts = [json.loads((d / "results.json").read_text(encoding="utf-8")) for d in dirs]
        results, final, start_up, again = merge(parts)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"power cut: --merge: {exc}", file=sys.stderr)
        return 2
    planned = [p.number for p in plan(n, seed)]
    tried = sorted(r.number for r in results)
    command = f"make power-cut N={n}" + (f" SEED={seed}" if seed != 22 else "")
    command += ", run in parts joined by --merge"
    text = table(results, final, start_up, command)
    if tried != planned:
        absent = sorted(set(planned) - set(tried))
        text += (
            f"\n\n{len(tried)} of the {n} planned crash points were tried; not tried: "
            f"{absent[0]}–{absent[-1]} ({len(absent)})."
            if absent
            else f"\n\nThe parts hold crash points outside a plan of {n}."
        )
    if again:
        text += (
            f"\n\n{len(again)} crash point(s) were tried by more than one part; each is "
            "counted once (the first part's run), and a promise a second run broke is listed "
            "below."
        )
    details = broken_details(results + again, final)
    minutes = sum(r.seconds for r in results + again) / 60
    report = text + f"\n\nCrash points' own time: {minutes:.1f} min, parts: {len(dirs)}.\n"
    if details:
        report += "\nBroken promises:\n\n" + "\n".join(f"- {d}" for d in details) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(to_json(results, final, start_up), indent=1) + "\n", encoding="utf-8"
    )
    print(report)
    return 1 if details else 0


if __name__ == "__main__":
    raise SystemExit(main())
