"""The rig report: JSON, Markdown, HTML and the two PNG plots, and the summary table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from hil.rig.report import (
    COLOURS,
    LATENCY_PNG,
    VERDICT_PNG,
    draw_latency_histogram,
    draw_verdicts,
    summary_table,
    write_report,
)
from hil.rig.scenarios.scenario_support import FAIL, NOT_RUN, PASS, ScenarioResult, percentile


def results(fail: bool) -> list[ScenarioResult]:
    latency = ScenarioResult("alert_latency", "Alert latency")
    latency.samples["latency_s"] = [0.4, 0.5, 0.45, 1.2, 0.8]
    latency.figures.update({"p50_s": 0.5, "p95_s": 1.2, "max_s": 1.2, "samples": 5})
    latency.check("p95 <= 5 s", True, "fine")
    faults = ScenarioResult("faults", "Faults")
    faults.figures.update({"alerts_sealed": 9, "alerts_stored": 9 - fail, "lost": int(fail)})
    faults.check("zero alerts lost or duplicated", not fail, "books")
    faults.not_run("clock jump", "system clock shared")
    return [latency, faults]


def has_colour(image: np.ndarray, bgr: tuple[int, int, int]) -> bool:
    return bool(np.all(image == np.array(bgr, np.uint8), axis=2).any())


def test_verdicts_follow_the_checks() -> None:
    ok, bad = results(False), results(True)
    assert [r.verdict for r in ok] == [PASS, PASS]
    assert bad[1].verdict == FAIL
    only_skipped = ScenarioResult("x", "X")
    only_skipped.not_run("a", "no hardware")
    assert only_skipped.verdict == NOT_RUN


def test_write_report_makes_every_file(tmp_path: Path) -> None:
    meta = {"rig": "unit", "kind": "virtual", "network": "loopback"}
    path = write_report(tmp_path / "out", meta, results(True))
    body = json.loads(path.read_text())
    assert body["verdict"] == FAIL and body["rig"] == "unit"
    assert [s["name"] for s in body["scenarios"]] == ["alert_latency", "faults"]
    assert body["scenarios"][1]["checks"][1] == {
        "name": "clock jump",
        "verdict": NOT_RUN,
        "detail": "system clock shared",
    }
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| faults" in md and "FAIL" in md and f"![{LATENCY_PNG}]" in md
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<table>" in html and VERDICT_PNG in html
    for name in (LATENCY_PNG, VERDICT_PNG):
        image = cv2.imread(str(tmp_path / "out" / name))
        assert image is not None and image.shape[1] == 640


def test_an_all_pass_report_passes(tmp_path: Path) -> None:
    path = write_report(tmp_path, {"rig": "unit"}, results(False))
    assert json.loads(path.read_text())["verdict"] == PASS
    assert write_report(tmp_path / "none", {"rig": "unit"}, []).exists()
    assert json.loads((tmp_path / "none" / "report.json").read_text())["verdict"] == FAIL


def test_verdict_chart_shows_a_failure_in_red() -> None:
    assert has_colour(draw_verdicts(results(True)), COLOURS[FAIL])
    clean = draw_verdicts(results(False))
    assert not has_colour(clean, COLOURS[FAIL])
    assert has_colour(clean, COLOURS[PASS]) and has_colour(clean, COLOURS[NOT_RUN])


def test_latency_histogram_draws_bars_for_samples() -> None:
    bar = (200, 130, 60)
    assert has_colour(draw_latency_histogram([0.3, 0.35, 2.0]), bar)
    assert not has_colour(draw_latency_histogram([]), bar)


def test_summary_table_lists_each_scenario_with_key_figures() -> None:
    table = summary_table(results(True)).splitlines()
    assert table[0].startswith("| scenario") and len(table) == 4
    assert "p95_s=1.2" in table[2] and "PASS" in table[2]
    assert "lost=1" in table[3] and "FAIL" in table[3] and "not run: clock jump" in table[3]


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 1) == 1.0
