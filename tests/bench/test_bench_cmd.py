"""lfr-agent bench --quick end to end (a smoke run: keys and sanity, no timed assertions)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agent.cli.agent_main import main

REQUIRED_KEYS = {
    "fps_sustained_1_thread", "fps_sustained_all_cores", "naive_fps", "ratio_vs_naive",
    "latency_ms_p50", "latency_ms_p95", "match_ms_1k", "match_ms_10k", "match_ms_100k",
    "rss_mb_10k", "stage_detect_ms_p50", "stage_embed_ms_p95",
    "match_snorm_ms_10k", "match_snorm_ms_100k", "snorm_ratio_10k", "snorm_ratio_100k",
    "snorm_prepare_ms_100k",
    "fps_clips_off", "fps_clips_on", "ratio_clips_on_vs_off",
}  # fmt: skip


@pytest.mark.slow
def test_quick_bench_writes_every_figure(
    tmp_path: Path, models_dir: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--models-dir", str(models_dir), "--json", str(out),
               "--faces", str(shared_data / "faces"),
               "--backgrounds", str(shared_data / "scenes/no_faces")])  # fmt: skip
    assert rc == 0
    fig = json.loads(out.read_text())
    assert set(fig) >= REQUIRED_KEYS
    for key in REQUIRED_KEYS - {"latency_ms_p50", "latency_ms_p95"}:
        assert isinstance(fig[key], int | float) and fig[key] > 0 and math.isfinite(fig[key]), key
    # The scene holds 4 enrolled people; the live pipeline must not alert on anyone else.
    assert fig["latency_wrong_alerts"] == 0
    assert fig["sustained_1_thread"]["frames"] == fig["clip"]["frames"] == 30
    # Clips were really made beside the pipeline in the clips-on run (one per match).
    assert fig["clips"]["clips"] + fig["clips"]["clips_missing"] >= 1
    text = capsys.readouterr().out
    assert "target" in text and "naive" in text and "clips off / on" in text
    assert "S-norm" in text and "x cosine at 100k" in text


def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["bench", "--quick", "--models-dir", str(models_dir), "--threshold", "0.1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--threshold" in err
    rc = main(["bench", "--quick", "--models-dir", str(models_dir),
               "--json", str(tmp_path / "no/such/dir/b.json")])  # fmt: skip
    assert rc == 2 and "--json" in capsys.readouterr().err
    rc = main(["bench", "--quick", "--models-dir", str(models_dir),
               "--faces", str(tmp_path / "none")])  # fmt: skip
    assert rc == 2 and "faces folder" in capsys.readouterr().err
