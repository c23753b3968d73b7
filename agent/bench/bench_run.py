"""One benchmark run: every figure of ``lfr-agent bench``, gathered into one flat dict.

Figures are measured, printed next to the product targets and returned; they
are never asserted (timings on a shared machine are noisy).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.bench.evidence_load import EvidenceLoad
from agent.bench.figures import percentile_ms
from agent.bench.gallery_scaling import time_in_child
from agent.bench.memory_probe import measure_in_child
from agent.bench.naive_pipeline import NaivePipeline, run_naive
from agent.bench.pipeline_runs import load_clip, run_latency, run_sustained
from agent.bench.plate_runs import run_faces_with_plates, run_plates, vehicle_clip
from agent.bench.scene_clip import enrol_watchlist, make_scene
from agent.camera.frame_source import BgrImage
from agent.config import AgentConfig
from agent.matching.gallery import Gallery
from agent.vision.embedder_spec import SFACE_SPEC
from agent.vision.model_store import (
    PinnedModel,
    plate_models_installed,
    resolve_models,
    resolve_plate_models,
)
from agent.vision.onnx_session import cpu_count

TARGETS = {
    "fps_sustained_all_cores": (">=", 30.0, "fps at 1280x720 with 4 faces (4-core Pi)"),
    "ratio_vs_naive": (">=", 5.0, "x the naive pipeline"),
    "fps_clips_on": (">=", 30.0, "fps with alert clips being made (4-core Pi)"),
    "match_ms_10k": ("<=", 1.0, "ms per probe at 10k"),
    "match_ms_100k": ("<=", 10.0, "ms per probe at 100k"),
    "snorm_ratio_10k": ("<=", 2.0, "x cosine at 10k"),
    "snorm_ratio_100k": ("<=", 2.0, "x cosine at 100k"),
    "rss_mb_10k": ("<=", 300.0, "MB peak RSS with 10k entries"),
    "fps_faces_with_plates": (">=", 30.0, "fps of the face pipeline with plates on (4-core Pi)"),
}


@dataclass(frozen=True)
class BenchPlan:
    """Sizes of one run; ``quick`` is a CI smoke run, the default a few minutes here."""

    clip_seconds: float
    latency_clips: int
    gallery_sizes: tuple[int, ...]
    gallery_repeats: int
    rss_gallery: int
    rss_frames: int
    plate_frames: int

    @classmethod
    def for_mode(cls, quick: bool) -> BenchPlan:
        if quick:
            return cls(1.0, 1, (1000, 10000, 100000), 20, 10000, 5, 15)
        return cls(6.0, 3, (1000, 10000, 100000), 100, 10000, 30, 60)


def run_bench(
    cfg: AgentConfig,
    models_dir: Path,
    faces_root: Path,
    backgrounds_root: Path,
    *,
    quick: bool = False,
    threshold: float | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every measurement; progress lines go to ``say``; returns the figures."""
    plan = BenchPlan.for_mode(quick)
    models = resolve_models(models_dir)
    thr = cfg.matching.threshold_floor if threshold is None else threshold
    all_cores = cpu_count()
    out: dict[str, Any] = {"quick": quick, "cores": all_cores, "threshold": thr}

    say(f"enrolling one photo per identity of {faces_root} (+ 1000 random entries)")
    watchlist = enrol_watchlist(models, faces_root, filler=1000, seed=seed)
    with tempfile.TemporaryDirectory(prefix="lfr-bench-") as tmp:
        scenes = []
        for k in range(plan.latency_clips):
            say(
                f"generating scene {k + 1}/{plan.latency_clips} ({plan.clip_seconds:g} s, 4 people)"
            )
            scenes.append(
                make_scene(
                    Path(tmp) / f"scene-{k}",
                    watchlist,
                    faces_root,
                    backgrounds_root,
                    models_dir,
                    seconds=plan.clip_seconds,
                    seed=seed + k,
                )
            )
        clip = scenes[0].frames_dir
        out["clip"] = {
            "size": "1280x720",
            "frames": len(scenes[0].frames),
            "people": len(scenes[0].identities),
            "fps": scenes[0].fps,
            "faces_per_frame": round(
                sum(len(fr.faces) for fr in scenes[0].frames) / len(scenes[0].frames), 2
            ),
        }

        # Decoded once, up front: both pipelines get the very same frames, none is timed decoding.
        images = load_clip(clip)
        for label, threads in (("1_thread", 1), ("all_cores", all_cores)):
            say(f"sustained throughput, {len(images)} frames, {threads} thread(s)")
            run = run_sustained(cfg, models, threads, watchlist.gallery, thr, images)
            out[f"sustained_{label}"] = run
            out[f"fps_sustained_{label}"] = run["fps"]
        if plate_models_installed(models_dir):
            _plate_figures(
                out,
                cfg,
                models,
                resolve_plate_models(models_dir),
                watchlist.gallery,
                thr,
                images,
                backgrounds_root,
                plan.plate_frames,
                seed,
                say,
            )
        else:
            say(
                "plate models not installed (lfr-agent models install --plate-wheel): no plate figures"
            )
        stages = out["sustained_1_thread"]["stages"]
        for stage, fig in stages.items():
            out[f"stage_{stage}_ms_p50"] = fig["p50_ms"]
            out[f"stage_{stage}_ms_p95"] = fig["p95_ms"]

        # Clips on against clips off, back to back in this run, frames stamped with the
        # scene's own time so pre-roll and post-roll cover the clip as on a camera.
        scene_fps = float(scenes[0].fps)
        say(
            f"sustained throughput with clips off and on, {len(images)} frames, {all_cores} threads"
        )
        off = run_sustained(
            cfg, models, all_cores, watchlist.gallery, thr, images, scene_fps=scene_fps
        )
        load = EvidenceLoad(cfg.clips)
        on = run_sustained(
            cfg,
            models,
            all_cores,
            watchlist.gallery,
            thr,
            images,
            evidence=load,
            scene_fps=scene_fps,
        )
        out["clips"] = load.close()
        out["fps_clips_off"] = off["fps"]
        out["fps_clips_on"] = on["fps"]
        out["ratio_clips_on_vs_off"] = _ratio(on["fps"], off["fps"])

        say(f"decision latency, real-time replay of {len(scenes)} scene(s), {all_cores} thread(s)")
        from_visible: list[float] = []
        from_entry: list[float] = []
        from_capture: list[float] = []
        matched = people = wrong = dropped = 0
        for truth in scenes:
            r = run_latency(cfg, models, all_cores, watchlist.gallery, thr, truth)
            from_visible += r["from_visible_s"]
            from_entry += r["from_entry_s"]
            from_capture += r["from_capture_s"]
            matched += r["matched"]
            people += r["people"]
            wrong += r["wrong_alerts"]
            dropped += r["frames_dropped"]
        # Frame-to-decision: from the capture of the frame whose face triggered the alert.
        out["latency_ms_p50"] = percentile_ms(from_capture, 50)
        out["latency_ms_p95"] = percentile_ms(from_capture, 95)
        # From the ground truth: the face's first fully visible frame, and its first appearance.
        out["latency_from_full_view_ms_p50"] = percentile_ms(from_visible, 50)
        out["latency_from_full_view_ms_p95"] = percentile_ms(from_visible, 95)
        out["latency_from_entry_ms_p50"] = percentile_ms(from_entry, 50)
        out["latency_from_entry_ms_p95"] = percentile_ms(from_entry, 95)
        out["latency_decided_before_full_view"] = sum(v < 0 for v in from_visible)
        out["latency_people_matched"] = f"{matched}/{people}"
        out["latency_wrong_alerts"] = wrong
        out["latency_frames_dropped"] = dropped

        spec = models["embedder"].spec
        if spec is None or spec == SFACE_SPEC:
            naive = NaivePipeline(
                models,
                watchlist.gallery,
                thr,
                input_long_side=cfg.detector.input_long_side,
                top_k=cfg.matching.top_k,
            )
            for label, threads in (("1_thread", 1), ("all_cores", all_cores)):
                say(f"naive per-frame pipeline (OpenCV), {len(images)} frames, {threads} thread(s)")
                out[f"naive_{label}"] = run_naive(naive, images, threads)
            out["naive_fps"] = out["naive_all_cores"]["fps"]
            out["naive_fps_1_thread"] = out["naive_1_thread"]["fps"]
        else:
            # OpenCV's FaceRecognizerSF prepares faces as SFace wants them, not as this model does.
            say("naive per-frame pipeline skipped: OpenCV's runner takes SFace-shaped models only")
            out["naive_skipped"] = "the embedder is not SFace-shaped (OpenCV's runner)"
            out["naive_fps"] = out["naive_fps_1_thread"] = float("nan")
        del images
        out["ratio_vs_naive"] = _ratio(out["fps_sustained_all_cores"], out["naive_fps"])
        out["ratio_vs_naive_1_thread"] = _ratio(
            out["fps_sustained_1_thread"], out["naive_fps_1_thread"]
        )

        say(f"gallery search, 1 probe against {', '.join(map(str, plan.gallery_sizes))} entries")
        # As the agent runs now (numpy's default BLAS pool), and with a 1-thread pool.
        for suffix, blas in (("", None), ("_blas1", 1)):
            scaling = time_in_child(
                plan.gallery_sizes,
                top_k=cfg.matching.top_k,
                repeats=plan.gallery_repeats,
                seed=seed,
                blas_threads=blas,
                dim=watchlist.gallery.dim,
            )
            for n, fig in scaling.items():
                key = f"{n // 1000}k" if n % 1000 == 0 else str(n)
                out[f"match_ms_{key}{suffix}"] = fig["p50_ms"]
                out[f"match_ms_{key}{suffix}_p95"] = fig["p95_ms"]
                out[f"match_snorm_ms_{key}{suffix}"] = fig["snorm_p50_ms"]
                out[f"match_snorm_ms_{key}{suffix}_p95"] = fig["snorm_p95_ms"]
                out[f"snorm_prepare_ms_{key}{suffix}"] = fig["snorm_prepare_ms"]
                # Both kinds timed probe by probe in one run: the ratio is what compares.
                out[f"snorm_ratio_{key}{suffix}"] = _ratio(fig["snorm_p50_ms"], fig["p50_ms"])

        # The daemon's thread setting (models.threads; 0: every core), so its two-stage mode
        # and both sessions' thread pools are counted.
        say(f"peak RSS with a {plan.rss_gallery}-entry gallery (child process)")
        rss = measure_in_child(
            models_dir, clip, plan.rss_gallery, plan.rss_frames, threads=cfg.models.threads
        )
        out["rss"] = rss
        out[f"rss_mb_{plan.rss_gallery // 1000}k"] = rss["rss_mb_peak"]
    return out


def _plate_figures(
    out: dict[str, Any],
    cfg: AgentConfig,
    models: dict[str, PinnedModel],
    plate_models: dict[str, PinnedModel],
    gallery: Gallery,
    thr: float,
    images: list[BgrImage],
    backgrounds_root: Path,
    frames: int,
    seed: int,
    say: Callable[[str], None],
) -> None:
    """Plates read per second with 1 and 2 vehicles; faces with plates beside them."""
    cores = out["cores"]
    clips = {}
    for n in (1, 2):
        clips[n] = vehicle_clip(backgrounds_root, n, frames, seed)
        say(f"plate pipeline, {frames} frames with {n} vehicle(s), {cores} thread(s)")
        run = run_plates(cfg, plate_models, cores, clips[n])
        out[f"plates_{n}_vehicles"] = run
        out[f"plates_fps_{n}_vehicles"] = run["fps"]
    say(f"face pipeline with the plate pipeline beside it (2 vehicles), {cores} thread(s) each")
    both = run_faces_with_plates(cfg, models, plate_models, cores, gallery, thr, images, clips[2])
    out["faces_with_plates"] = both
    out["fps_faces_with_plates"] = both["faces"]["fps"]
    out["plates_fps_beside_faces"] = both["plates"].get("fps", float("nan"))
    out["ratio_faces_with_plates"] = _ratio(both["faces"]["fps"], out["fps_sustained_all_cores"])


def _ratio(a: float, b: float) -> float:
    if not b or math.isnan(a) or math.isnan(b):
        return float("nan")
    return round(a / b, 2)


def _naive_lines(fig: dict[str, Any], target: Callable[[str], str]) -> list[str]:
    if "naive_skipped" in fig:
        return [f"naive fps: n/a ({fig['naive_skipped']})"]
    return [
        f"naive fps, 1 thread            {fig['naive_fps_1_thread']:8.1f}"
        f"   ({fig['naive_1_thread']['faces_embedded']} faces embedded"
        f" in the same {fig['naive_1_thread']['frames']} frames)",
        f"naive fps, {fig['cores']} threads          {fig['naive_fps']:8.1f}",
        f"ratio vs naive                 {fig['ratio_vs_naive']:8.2f}"
        + target("ratio_vs_naive")
        + f"   (1 thread: {fig['ratio_vs_naive_1_thread']:.2f})",
    ]


def format_report(fig: dict[str, Any]) -> str:
    """Human-readable figures with the targets next to them."""

    def target(key: str) -> str:
        if key not in TARGETS:
            return ""
        op, value, what = TARGETS[key]
        v = fig.get(key)
        ok = (
            isinstance(v, int | float)
            and not math.isnan(v)
            and (v >= value if op == ">=" else v <= value)
        )
        return f"   target {op} {value:g} {what}: {'met' if ok else 'NOT met'} here"

    s1, sn = fig["sustained_1_thread"], fig["sustained_all_cores"]
    lines = [
        f"clip: {fig['clip']['size']}, {fig['clip']['frames']} frames, "
        f"{fig['clip']['people']} people walking ({fig['clip']['faces_per_frame']} faces per"
        f" frame on average); {fig['cores']} core(s); "
        f"threshold {fig['threshold']}" + ("  [--quick]" if fig["quick"] else ""),
        "",
        "per-stage latency, 1 thread (median / p95 ms per call):",
    ]
    for stage, f in s1["stages"].items():
        extra = f", {f['per_face_ms']} ms per face" if "per_face_ms" in f else ""
        lines.append(
            f"  {stage:6} {f['p50_ms']:8.2f} / {f['p95_ms']:8.2f}   ({f['count']} calls{extra})"
        )
    lines += [
        "",
        f"sustained fps: wall clock from the first frame handed over until the last embedding"
        f" is compared ({s1['frames']} decoded frames, decoding not timed)",
        f"sustained fps, 1 thread        {fig['fps_sustained_1_thread']:8.1f}"
        f"   ({s1['counters']['embeddings']} embeddings, matched {len(s1['matched'])} people)",
        f"sustained fps, {fig['cores']} threads      {fig['fps_sustained_all_cores']:8.1f}"
        + target("fps_sustained_all_cores")
        + f"   ({sn['counters']['embeddings']} embeddings, matched {len(sn['matched'])} people,"
        f" final flush {sn['flush_ms']:.0f} ms)",
        *_naive_lines(fig, target),
        f"fps, clips off / on, {fig['cores']} threads  {fig['fps_clips_off']:8.1f} /"
        f" {fig['fps_clips_on']:.1f}   ratio {fig['ratio_clips_on_vs_off']:.2f}"
        + target("fps_clips_on")
        + f"   ({fig['clips']['clips']} clips of {fig['clips']['clip_frames']} frames encoded"
        f" in {fig['clips']['encode_s']:.2f} s beside the pipeline,"
        f" {fig['clips']['clip_bytes_sealed']} bytes sealed)",
        "",
        f"frame-to-decision latency (capture of the deciding frame)  p50"
        f" {fig['latency_ms_p50']:.0f} ms  p95 {fig['latency_ms_p95']:.0f} ms"
        f"   (people matched {fig['latency_people_matched']}, wrong alerts"
        f" {fig['latency_wrong_alerts']}, frames dropped {fig['latency_frames_dropped']})",
        f"decision time from first full visibility                 p50"
        f" {fig['latency_from_full_view_ms_p50']:.0f} ms  p95"
        f" {fig['latency_from_full_view_ms_p95']:.0f} ms",
        f"  (negative: decided while the face was still cut by the frame edge or the pole;"
        f" {fig['latency_decided_before_full_view']} people)",
        f"decision time from first appearance at the frame edge    p50"
        f" {fig['latency_from_entry_ms_p50']:.0f} ms  p95 {fig['latency_from_entry_ms_p95']:.0f} ms",
        "",
    ]
    if "fps_faces_with_plates" in fig:
        lines += [
            "number plates (synthetic vehicles on a street scene, 1280x720, every frame read):",
            f"plates fps, 1 vehicle          {fig['plates_fps_1_vehicles']:8.1f}",
            f"plates fps, 2 vehicles         {fig['plates_fps_2_vehicles']:8.1f}",
            f"faces fps with plates beside   {fig['fps_faces_with_plates']:8.1f}"
            + target("fps_faces_with_plates")
            + f"   (ratio to faces alone in this run {fig['ratio_faces_with_plates']:.2f};"
            f" plates read {fig['plates_fps_beside_faces']:.1f} fps meanwhile)",
            "",
        ]
    for size in ("1k", "10k", "100k"):
        key = f"match_ms_{size}"
        lines.append(
            f"{key:14} {fig[key]:8.3f} ms (p95 {fig[key + '_p95']:.3f};"
            f" 1-thread BLAS {fig[key + '_blas1']:.3f}, p95 {fig[key + '_blas1_p95']:.3f})"
            + target(key)
        )
        snorm = f"match_snorm_ms_{size}"
        lines.append(
            f"  S-norm       {fig[snorm]:8.3f} ms (p95 {fig[snorm + '_p95']:.3f};"
            f" 1-thread BLAS {fig[snorm + '_blas1']:.3f}); {fig['snorm_ratio_' + size]:.2f}x"
            f" cosine (1-thread BLAS {fig['snorm_ratio_' + size + '_blas1']:.2f}x);"
            f" statistics at load {fig['snorm_prepare_ms_' + size]:.1f} ms"
            + target(f"snorm_ratio_{size}")
        )
    rss_key = next(k for k in fig if k.startswith("rss_mb_"))
    lines.append(
        f"{rss_key:14} {fig[rss_key]:8.1f} MB (models loaded: {fig['rss']['rss_mb_after_models']}"
        f" MB, gallery {fig['rss']['gallery_mb']} MB)" + target(rss_key)
    )
    lines.append(
        f"  (face pipeline and gallery alone, {fig['rss']['threads']} model thread(s) as the"
        f" daemon's models.threads gives, {fig['rss']['frames']} frames; the daemon's transport"
        " and outbox come on top)"
    )
    lines.append("")
    lines.append("Targets are for a 4-core Pi; figures taken on a shared machine are noisy.")
    return "\n".join(lines)
