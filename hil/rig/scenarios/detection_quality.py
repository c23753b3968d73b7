"""Detection quality on the scene: watchlist people alerted (true-positive identification
rate per person and pass) and nobody else ever alerted (false alerts, per hour watched)."""

from __future__ import annotations

from hil.rig.scenarios.scenario_support import RigDriver, ScenarioResult
from hil.rig.scenarios.scene_watch import watch_scene

TITLE = "Detection quality"
MIN_TPIR = 0.9  # clear frontal faces of 70-150 px crossing a street: nearly all must alert


def run(rig: RigDriver, result: ScenarioResult) -> None:
    watch = watch_scene(rig)
    expected = len(watch.present_watched) * watch.full_passes
    hits = len({(i, k) for i, k in watch.alerted if i in watch.present_watched})
    full = [
        i for i in watch.present_watched if rig.truth.identities[i].first_full_frame is not None
    ]
    full_hits = len({(i, k) for i, k in watch.alerted if i in full})
    if full and watch.full_passes:
        result.figures["tpir_fully_visible"] = round(full_hits / (len(full) * watch.full_passes), 3)
    false = [a for a in watch.alerts if not a.true]
    tpir = hits / expected if expected else float("nan")
    per_hour = len(false) / (watch.observed_s / 3600) if watch.observed_s else float("nan")
    result.figures.update(
        {
            "tpir": round(tpir, 3),
            "alerted": f"{hits}/{expected}",
            "false_alerts": len(false),
            "false_alerts_per_hour": round(per_hour, 1),
            "watched_s": round(watch.observed_s, 1),
            "alerts": len(watch.alerts),
        }
    )
    for a in false:
        result.notes.append(
            f"false alert {a.alert_id[:12]}: entry of {a.identity} at pass {a.scene_pass} "
            f"frame {a.scene_frame}, not in the picture"
        )
    result.check(
        f"TPIR >= {MIN_TPIR:g}",
        expected > 0 and tpir >= MIN_TPIR,
        f"{hits} of {expected} (person, pass) alerted",
    )
    result.check(
        "no false alert",
        not false,
        f"{len(false)} false alerts in {watch.observed_s:.0f} s of scene",
    )
