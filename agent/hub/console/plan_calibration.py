"""The console's plan form stated as a target false-alert rate: the threshold calibrated
against the chosen watchlist with the cohort of the hub config's ``[calibration]``.

The watchlist is the sealed file next to its hub map in ``watchlists.maps_dir`` (where
``lfr-hub watchlist build --out`` wrote both), opened with the hub key store. The cohort
is loaded once per model (and set of watchlist subjects left out of a labelled cohort)
and kept in memory for the life of the service: embedding a folder of photos may take
minutes, an ``.npz`` of embeddings does not. Nothing about the cohort's faces is written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UsageError
from agent.hub.calibration.cohort_sources import Cohort, load_cohort
from agent.hub.calibration.threshold_calibration import (
    calibrate,
    resolve_score,
    watchlist_gallery,
)
from agent.hub.keys.operator_keys import HubKeyStore
from agent.hub.service.hub_config import CalibrationSection
from agent.hub.watchlists.watchlist_reader import HubWatchlist, read_hub_watchlist
from agent.trust.activation_token import Calibration
from agent.vision.model_store import resolve_models


@dataclass(frozen=True)
class PlanThreshold:
    """A plan's threshold from its target false-alert rate, and how it was derived."""

    score: str
    target_fpir: float
    threshold: float
    calibration: Calibration


class PlanCalibrator:
    def __init__(self, section: CalibrationSection, keys: HubKeyStore | None, maps_dir: Path):
        self.section = section
        self.keys = keys
        self.maps_dir = maps_dir
        self._cohorts: dict[tuple[str, frozenset[str]], Cohort] = {}
        self._lock = threading.Lock()  # one cohort load at a time; plans are rare

    def threshold(self, watchlist_file: str, target_fpir: float) -> PlanThreshold:
        """The calibrated threshold; UsageError (one line) when it cannot be given."""
        if not self.section.cohort:
            raise UsageError(
                "target false-alert rate: no calibration cohort in the hub config "
                "([calibration] cohort); give a threshold instead"
            )
        if self.keys is None:
            raise UsageError(
                "target false-alert rate: the hub has no key folder ([keys] dir) to open "
                "the watchlist with; give a threshold instead"
            )
        watchlist = read_hub_watchlist(self.maps_dir / watchlist_file, self.keys)
        try:
            gallery = watchlist_gallery(watchlist)
            try:
                score, _ = resolve_score(gallery, self.section.score)
            finally:
                gallery.clear()
            cohort = self._cohort(watchlist)
            choice = calibrate(
                (watchlist.embeddings, watchlist.refs),
                cohort.embeddings,
                score=score,
                target_fpir=target_fpir,
                floor=self.section.floor,
                top_k=self.section.top_k,
            )
        finally:
            watchlist.wipe()
        return PlanThreshold(score, target_fpir, choice.threshold, choice.calibration)

    def _cohort(self, watchlist: HubWatchlist) -> Cohort:
        key = (watchlist.model_id, watchlist.subjects)
        with self._lock:
            if key not in self._cohorts:
                sources = self.section.cohort
                models = (
                    resolve_models(self.section.models_dir)
                    if any(s.is_dir() for s in sources)
                    else {}
                )
                self._cohorts[key] = load_cohort(
                    sources,
                    models,
                    model_id=watchlist.model_id,
                    dim=watchlist.embeddings.shape[1],
                    exclude_identities=watchlist.subjects,
                )
            return self._cohorts[key]
