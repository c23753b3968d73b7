"""The threshold calibration: a target false-alert rate (FPIR, per face compared) to the score
threshold that achieves it for one watchlist, model and score kind.

The one function a supervisor's tools call (``lfr-hub calibrate``, ``lfr-hub activate
--target-fpir``, and the web console when it creates a deployment)::

    choice = calibrate(watchlist, cohort, score="snorm", target_fpir=1/6000)
    choice.threshold, choice.calibration.fpir_ci95, choice.calibration.cohort_size

``watchlist`` is the sealed watchlist as the hub opens it (``read_hub_watchlist``) or its
embeddings and entry references; ``cohort`` the N×D embeddings of non-mated faces
(``load_cohort``). Each cohort face is scored against the watchlist by the camera's own
code (``Gallery.rank``, S-norm included, with the device's cosine floor and top k) and the
threshold is chosen by ``agent.matching.threshold_choice``. A target the cohort cannot
support (fewer than 3/target faces), a rate outside (0, 1], or S-norm on a watchlist too
small to normalise against is refused with a one-line error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.config import MatchingSection
from agent.errors import UsageError
from agent.hub.watchlists.watchlist_reader import HubWatchlist
from agent.matching.gallery import Gallery
from agent.matching.score_normalisation import SNORM_MIN_COHORT, CohortTooSmall
from agent.matching.threshold_choice import (
    TargetNotSupported,
    ThresholdChoice,
    alert_scores,
    choose_threshold,
    supported_target_problem,
)

DEFAULT_FLOOR = MatchingSection().threshold_floor
DEFAULT_TOP_K = MatchingSection().top_k
#: FPIR targets of the table: 1 in 100, 1 in 1,000 and the Met's published 1 in 6,000.
DEFAULT_TARGETS = (1e-2, 1e-3, 1 / 6000)
SCORE_CHOICES = ("auto", "snorm", "cosine")

WatchlistInput = HubWatchlist | tuple[npt.NDArray[np.floating], Sequence[str]]


@dataclass(frozen=True)
class TableRow:
    target_fpir: float
    choice: ThresholdChoice | None  # None when refused
    problem: str | None  # why it was refused


def watchlist_gallery(watchlist: WatchlistInput) -> Gallery:
    """The gallery a camera builds from this watchlist (float16 entries, as the bundle
    carries them, so every score is the camera's, up to float32 rounding)."""
    if isinstance(watchlist, HubWatchlist):
        return Gallery(np.asarray(watchlist.embeddings, np.float16), list(watchlist.refs))
    embeddings, refs = watchlist
    return Gallery(np.asarray(embeddings, dtype=np.float16), list(refs))


def resolve_score(gallery: Gallery, requested: str) -> tuple[str, str | None]:
    """The score kind to calibrate and, when ``auto`` picked cosine, why."""
    if requested not in SCORE_CHOICES:
        raise UsageError(f"--score: must be one of {', '.join(SCORE_CHOICES)}, got {requested!r}")
    if requested != "auto":
        return requested, None
    if gallery.smallest_cohort >= SNORM_MIN_COHORT:
        return "snorm", None
    return "cosine", (
        f"cosine scores: the watchlist ({len(gallery)} entries) is too small for S-norm, which "
        f"needs {SNORM_MIN_COHORT} entries of other subjects for every entry"
    )


def _alert_scores(
    gallery: Gallery, cohort: npt.NDArray[np.floating], score: str, floor: float, top_k: int
) -> npt.NDArray[np.float32]:
    cohort = np.asarray(cohort, np.float32)
    if cohort.ndim != 2 or cohort.shape[1] != gallery.dim or not len(cohort):
        raise UsageError(
            f"calibration: the cohort must be N×{gallery.dim} embeddings, got {cohort.shape}"
        )
    if not np.isfinite(cohort).all():
        raise UsageError("calibration: the cohort holds NaN or infinite embeddings")
    try:
        return alert_scores(gallery, cohort, score, floor=floor, top_k=top_k)
    except CohortTooSmall as exc:
        raise UsageError(f"calibration: {exc}") from exc


def calibration_table(
    watchlist: WatchlistInput,
    cohort: npt.NDArray[np.floating],
    *,
    score: str,
    targets: Sequence[float] = DEFAULT_TARGETS,
    floor: float = DEFAULT_FLOOR,
    top_k: int = DEFAULT_TOP_K,
) -> list[TableRow]:
    """One row per target: the threshold with its achieved FPIR and CI, or why not."""
    gallery = watchlist_gallery(watchlist)
    try:
        scores = _alert_scores(gallery, cohort, score, floor, top_k)
    finally:
        gallery.clear()
    rows = []
    for target in targets:
        try:
            rows.append(TableRow(target, choose_threshold(scores, target, score, floor), None))
        except TargetNotSupported as exc:
            rows.append(TableRow(target, None, str(exc)))
    scores.fill(0)
    return rows


def calibrate(
    watchlist: WatchlistInput,
    cohort: npt.NDArray[np.floating],
    *,
    score: str,
    target_fpir: float,
    floor: float = DEFAULT_FLOOR,
    top_k: int = DEFAULT_TOP_K,
) -> ThresholdChoice:
    """The threshold for ``target_fpir``; UsageError (one line) when it cannot be given."""
    if (problem := supported_target_problem(target_fpir, len(cohort))) is not None:
        raise TargetNotSupported(problem)
    (row,) = calibration_table(
        watchlist, cohort, score=score, targets=(target_fpir,), floor=floor, top_k=top_k
    )
    if row.choice is None:
        raise TargetNotSupported(row.problem or "calibration failed")
    return row.choice


def parse_fpir(text: str) -> float:
    """'1/6000', '1e-3', '0.01' → a rate; UsageError when it is not one in (0, 1]."""
    raw = text.strip()
    try:
        if "/" in raw:
            num, _, den = raw.partition("/")
            value = float(num) / float(den)
        else:
            value = float(raw)
    except (ValueError, ZeroDivisionError) as exc:
        raise UsageError(
            f"--target-fpir: {text!r} is not a rate like 1/6000, 1e-3 or 0.01"
        ) from exc
    if not 0.0 < value <= 1.0 or value != value:
        raise UsageError(f"--target-fpir: must be above 0 and at most 1, got {text!r}")
    return value
