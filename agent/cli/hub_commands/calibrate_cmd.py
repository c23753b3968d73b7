"""lfr-hub calibrate --watchlist FILE [--cohort SRC ...] [--target-fpir RATE ...]: the threshold
table (target false-alert rate → score threshold, with the rate achieved and its 95 % CI)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from agent.cli.hub_commands.watchlist_cmd import DEFAULT_HUB_DIR, DEFAULT_MODELS_DIR
from agent.errors import UsageError
from agent.hub.calibration.cohort_sources import Cohort, load_cohort
from agent.hub.calibration.threshold_calibration import (
    DEFAULT_FLOOR,
    DEFAULT_TARGETS,
    DEFAULT_TOP_K,
    SCORE_CHOICES,
    TableRow,
    calibration_table,
    parse_fpir,
    resolve_score,
    watchlist_gallery,
)
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.watchlists.watchlist_reader import HubWatchlist, read_hub_watchlist
from agent.vision.model_store import resolve_models


def default_cohort() -> Path:
    """The product's own labelled set, the fallback cohort where it is present (a development
    or test machine: it is never shipped)."""
    env = os.environ.get("LFR_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"
    return root / "faces"


def add_calibration_args(p: argparse.ArgumentParser) -> None:
    """The options of a calibration, shared by 'calibrate' and 'activate --target-fpir'."""
    p.add_argument(
        "--cohort",
        type=Path,
        action="append",
        default=None,
        metavar="DIR_OR_NPZ",
        help="non-mated faces: a folder of photos, a labelled <identity>/<image> folder or an "
        ".npz of embeddings (repeatable; default: the product's own labelled set, "
        f"{default_cohort()})",
    )
    p.add_argument(
        "--score",
        choices=SCORE_CHOICES,
        default="auto",
        help="score kind of the threshold (default auto: snorm, or cosine for a watchlist "
        "too small to normalise against)",
    )
    p.add_argument(
        "--floor",
        type=float,
        default=DEFAULT_FLOOR,
        help="the devices' matching.threshold_floor: no alert below this cosine "
        "(default %(default)s)",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help="the devices' matching.top_k (default %(default)s)",
    )
    p.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help=f"pinned models, to embed cohort photos ({DEFAULT_MODELS_DIR})",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calibrate",
        help="thresholds for target false-alert rates against one watchlist, from a cohort",
        description=(
            "Scores every face of a non-mated cohort (people known not to be on the "
            "watchlist) against the watchlist exactly as a camera would and prints, per target "
            "FPIR (false alerts per face compared), the score threshold, the false alerts it "
            "leaves in the cohort and the 95% confidence interval of that rate. A target the "
            "cohort is too small to support (fewer than 3/target faces) is refused."
        ),
    )
    p.add_argument(
        "--watchlist", type=Path, required=True, help="sealed watchlist built by this hub"
    )
    p.add_argument(
        "--hub-dir", type=Path, default=DEFAULT_HUB_DIR, help=f"hub key folder ({DEFAULT_HUB_DIR})"
    )
    p.add_argument(
        "--target-fpir",
        action="append",
        default=None,
        metavar="RATE",
        help="target false-alert rate, e.g. 1/6000 or 1e-3 (repeatable; default 1/100, "
        "1/1000 and 1/6000, where the cohort supports them)",
    )
    add_calibration_args(p)
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(handler=cmd_calibrate)


def _check_args(args: argparse.Namespace) -> None:
    if not 0.0 <= args.floor <= 1.0:
        raise UsageError(f"--floor: must be a cosine in 0–1, got {args.floor}")
    if not 1 <= args.top_k <= 50:
        raise UsageError(f"--top-k: must be 1–50, got {args.top_k}")


def open_for_calibration(
    args: argparse.Namespace, watchlist_path: Path
) -> tuple[HubWatchlist, str, str | None, Cohort]:
    """The watchlist, the score kind to calibrate (and why, when auto picked cosine) and
    the cohort, from the shared calibration options."""
    _check_args(args)
    keys = HubKeyStore.open(args.hub_dir)
    watchlist = read_hub_watchlist(watchlist_path, keys)
    gallery = watchlist_gallery(watchlist)
    try:
        score, note = resolve_score(gallery, args.score)
    finally:
        gallery.clear()
    sources = args.cohort or [default_cohort()]
    if not args.cohort and not sources[0].is_dir():
        raise UsageError(
            f"calibrate: give --cohort (the fallback, the product's labelled set at {sources[0]},"
            " is not on this machine)"
        )
    models = resolve_models(args.models_dir) if any(s.is_dir() for s in sources) else {}
    cohort = load_cohort(
        sources,
        models,
        model_id=watchlist.model_id,
        dim=watchlist.embeddings.shape[1],
        exclude_identities=watchlist.subjects,
    )
    return watchlist, score, note, cohort


def format_rate(rate: float) -> str:
    inverse = 1 / rate
    if rate < 1 and abs(inverse - round(inverse)) < 1e-6 * inverse:
        return f"1/{round(inverse)}"
    return f"{rate:g}"


def table_json(
    watchlist: HubWatchlist, score: str, cohort: Cohort, rows: list[TableRow], floor: float
) -> dict[str, Any]:
    return {
        "watchlist_sha256": watchlist.watchlist_hash,
        "model_id": watchlist.model_id,
        "score": score,
        "floor": floor,
        "cohort_size": cohort.size,
        "cohort_sources": list(cohort.descriptions),
        "targets": [
            {"target_fpir": r.target_fpir, "refused": r.problem}
            if r.choice is None
            else {
                "target_fpir": r.target_fpir,
                "threshold": r.choice.threshold,
                **r.choice.calibration.body(),
            }
            for r in rows
        ],
    }


def cmd_calibrate(args: argparse.Namespace) -> int:
    explicit = [parse_fpir(t) for t in args.target_fpir or []]
    watchlist, score, note, cohort = open_for_calibration(args, args.watchlist)
    entries = len(watchlist.refs)  # before the wipe below
    try:
        rows = calibration_table(
            (watchlist.embeddings, watchlist.refs),
            cohort.embeddings,
            score=score,
            targets=explicit or DEFAULT_TARGETS,
            floor=args.floor,
            top_k=args.top_k,
        )
    finally:
        watchlist.wipe()
    refused = [r for r in rows if r.choice is None]
    if refused and (explicit or len(refused) == len(rows)):
        raise UsageError(f"calibrate: {refused[0].problem}")
    if args.json:
        table = table_json(watchlist, score, cohort, rows, args.floor)
        print(json.dumps({**table, "watchlist_entries": entries}, indent=1))
    else:
        print(
            f"watchlist {watchlist.watchlist_hash[:16]}… (deployment {watchlist.deployment_id}, "
            f"{entries} entries, model {watchlist.model_id})"
        )
        for line in cohort.descriptions:
            print(f"cohort   {line}")
        print(
            f"score    {score}" + (f" ({note})" if note else "") + f"; no alert below cosine "
            f"{args.floor:g}; top {args.top_k} entries per face; {cohort.size} non-mated faces"
        )
        print(f"\n{'target FPIR':>12}  {'threshold':>9}  {'false alerts':>12}  {'FPIR (95% CI)'}")
        for r in rows:
            if r.choice is None:
                print(f"{format_rate(r.target_fpir):>12}  refused: {r.problem}")
                continue
            c = r.choice.calibration
            print(
                f"{format_rate(r.target_fpir):>12}  {r.choice.threshold:9.4f}  "
                f"{c.false_alerts:>5} / {c.cohort_size:<5}  {c.fpir:.4f} "
                f"({c.fpir_ci95[0]:.4f}–{c.fpir_ci95[1]:.4f})"
            )
    return 0
