"""The soak's verdict: least-squares slope over the second half, projected to 12 h."""

from __future__ import annotations

import math
import random

import pytest

from hil.soak.growth_verdict import (
    FAIL,
    INFO,
    MIN_WINDOW_SAMPLES,
    PASS,
    Budget,
    Point,
    cycle_length,
    fit_line,
    judge,
    second_half,
)

RUN_S = 3600.0
STEP_S = 10.0


def series(f: object, run_s: float = RUN_S) -> list[Point]:
    fn = f  # a callable t -> value | None
    return [(t * STEP_S, fn(t * STEP_S)) for t in range(int(run_s / STEP_S) + 1)]  # type: ignore[operator]


def test_fit_recovers_an_exact_slope_per_hour() -> None:
    line = fit_line([(t, 100.0 + 2.0 * t / 3600.0) for t in range(0, 3600, 10)])
    assert line is not None
    assert line.slope_per_h == pytest.approx(2.0)
    assert line.projected == pytest.approx(24.0)
    assert line.stderr_per_h == pytest.approx(0.0, abs=1e-9)


def test_fit_needs_two_distinct_times() -> None:
    assert fit_line([(5.0, 1.0)]) is None
    assert fit_line([(5.0, 1.0), (5.0, 2.0)]) is None


def test_second_half_drops_warm_up_and_gaps() -> None:
    pts: list[Point] = [(0.0, 1.0), (1700.0, 2.0), (1800.0, None), (1900.0, 3.0), (3600.0, 4.0)]
    assert second_half(pts, RUN_S) == [(1900.0, 3.0), (3600.0, 4.0)]


def test_flat_memory_with_noise_passes() -> None:
    rng = random.Random(7)
    pts = series(lambda t: 250.0 + rng.gauss(0, 1.0))
    g = judge("daemon.rss_mb", "MB", pts, Budget("relative", 5), RUN_S)
    assert g.verdict == PASS, g.detail


def test_a_slow_leak_fails_the_relative_budget() -> None:
    # 1 % of the level per hour: 12 % in 12 h, over the 5 % budget.
    pts = series(lambda t: 200.0 * (1 + 0.01 * t / 3600.0))
    g = judge("daemon.rss_mb", "MB", pts, Budget("relative", 5), RUN_S)
    assert g.verdict == FAIL
    assert "+11.9" in g.detail  # of the mean level over the window, not of the start


def test_a_leak_under_the_budget_passes() -> None:
    pts = series(lambda t: 200.0 * (1 + 0.002 * t / 3600.0))  # 2.4 % in 12 h
    assert judge("x", "MB", pts, Budget("relative", 5), RUN_S).verdict == PASS


def test_warm_up_growth_in_the_first_half_does_not_count() -> None:
    pts = series(lambda t: 100.0 + min(t, 1500.0) / 10.0)  # grows, then flat from 25 min
    assert judge("x", "MB", pts, Budget("relative", 5), RUN_S).verdict == PASS


def test_growth_that_starts_in_the_second_half_is_caught() -> None:
    pts = series(lambda t: 100.0 + max(0.0, t - 2400.0) / 60.0)
    assert judge("x", "MB", pts, Budget("relative", 5), RUN_S).verdict == FAIL


def test_memory_handed_back_is_not_a_failure() -> None:
    pts = series(lambda t: 300.0 - t / 100.0)
    assert judge("x", "MB", pts, Budget("relative", 5), RUN_S).verdict == PASS


def test_one_descriptor_per_ten_minutes_fails_flat_fds() -> None:
    pts = series(lambda t: 40.0 + t // 600)
    g = judge("daemon.fds", "fds", pts, Budget("absolute", 2), RUN_S)
    assert g.verdict == FAIL
    # 72 in 12 h at the average rate; a staircase's least-squares line sits a little under.
    assert g.line is not None and 55.0 < g.line.projected < 80.0


def test_constant_threads_pass_an_absolute_budget() -> None:
    assert (
        judge("t", "threads", series(lambda t: 9.0), Budget("absolute", 1), RUN_S).verdict == PASS
    )


def test_growth_from_zero_fails_a_relative_budget() -> None:
    pts = series(lambda t: 0.0 if t < 3000 else 1.0)
    g = judge("x", "MB", pts, Budget("relative", 50), RUN_S)
    assert g.verdict == FAIL


def test_falling_frame_rate_fails_the_decline_budget() -> None:
    falling = series(lambda t: 10.0 * (1 - 0.02 * t / 3600.0))  # -24 % in 12 h
    steady = series(lambda t: 10.0)
    assert judge("fps", "fps", falling, Budget("decline", 10), RUN_S).verdict == FAIL
    assert judge("fps", "fps", steady, Budget("decline", 10), RUN_S).verdict == PASS


def test_database_growth_is_judged_per_alert_stored() -> None:
    alerts = series(lambda t: t / 10.0)  # 360 alerts an hour
    in_step = series(lambda t: 5.0 + 0.1 * t / 10.0)  # 0.1 MB per alert
    faster = series(lambda t: 5.0 + 0.5 * t / 10.0)  # 0.5 MB per alert
    budget = Budget("per", 0.25, per="alerts.stored")
    assert judge("db", "MB", in_step, budget, RUN_S, alerts).verdict == PASS
    g = judge("db", "MB", faster, budget, RUN_S, alerts)
    assert g.verdict == FAIL
    assert "0.5 MB per alerts.stored" in g.detail


def test_database_growth_without_alerts_is_judged_absolute() -> None:
    budget = Budget("per", 0.25, per="alerts.stored")
    no_alerts = series(lambda t: 100.0)
    growing = series(lambda t: 5.0 + t / 3600.0)
    assert judge("db", "MB", growing, budget, RUN_S, no_alerts).verdict == FAIL


def test_too_few_samples_fail_rather_than_pass() -> None:
    pts: list[Point] = [(1800.0 + 100.0 * k, 1.0) for k in range(MIN_WINDOW_SAMPLES - 1)]
    g = judge("x", "MB", pts, Budget("relative", 5), RUN_S)
    assert g.verdict == FAIL
    assert "only" in g.detail


def test_a_resource_never_sampled_fails() -> None:
    pts: list[Point] = [(t, None) for t in range(0, 3600, 10)]
    assert judge("x", "MB", pts, Budget("absolute", 1), RUN_S).verdict == FAIL


def test_info_resources_never_fail() -> None:
    g = judge("frames", "frames", series(lambda t: t * 100.0), Budget("info"), RUN_S)
    assert g.verdict == INFO


def test_json_carries_the_figures() -> None:
    g = judge("x", "MB", series(lambda t: 100.0 + t / 3600.0), Budget("relative", 5), RUN_S)
    j = g.to_json()
    assert j["slope_per_h"] == pytest.approx(1.0)
    assert j["projected_12h"] == pytest.approx(12.0)
    assert j["budget"] == "growth < 5 % in 12 h"
    assert isinstance(j["mean"], float) and math.isfinite(j["mean"])


@pytest.mark.parametrize(
    ("kind", "per", "message"),
    [("grow", "", "budget kind 'grow'"), ("per", "", "names the resource")],
)
def test_bad_budgets_are_refused(kind: str, per: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budget(kind, 1.0, per)


def test_noise_allowance_forgives_a_noisy_flat_rate_but_not_a_climbing_one() -> None:
    rng = random.Random(3)
    noisy = [(t, 15.0 + rng.gauss(0, 5.0)) for t in range(0, 600, 10)]
    strict = Budget("relative", 300)
    forgiving = Budget("relative", 300, noise_se=2.0, rate=True)
    assert judge("cpu", "%", noisy, forgiving, 600.0).verdict == PASS
    climbing = [(t, 15.0 + t / 30.0 + rng.gauss(0, 1.0)) for t in range(0, 600, 10)]
    g = judge("cpu", "%", climbing, forgiving, 600.0)
    assert g.verdict == FAIL
    assert "beyond 2 s.e." in g.detail
    # A rate's line goes through block means; a budget without the allowance is a level's
    # and is fitted on the samples themselves.
    rate_line = judge("cpu", "%", noisy, forgiving, 600.0).line
    level_line = judge("cpu", "%", noisy, strict, 600.0).line
    assert rate_line is not None and rate_line.block_samples == 3
    assert level_line is not None and level_line.block_samples == 0


def test_noise_allowance_on_a_decline_moves_towards_zero() -> None:
    rng = random.Random(5)
    steady = [(t, 10.0 + rng.gauss(0, 0.8)) for t in range(0, 600, 10)]
    falling = [(t, 10.0 - t / 120.0) for t in range(0, 600, 10)]
    budget = Budget("decline", 60, noise_se=2.0, rate=True)
    assert judge("fps", "fps", steady, budget, 600.0).verdict == PASS
    assert judge("fps", "fps", falling, budget, 600.0).verdict == FAIL


@pytest.mark.parametrize("run_s", [600.0, 3600.0, 11.5 * 3600])
def test_every_fault_is_over_before_the_judged_half(run_s: float) -> None:
    from hil.soak.soak_timeline import plan_for

    plan = plan_for(run_s)
    assert 0 < plan.broker_restart_at_s < plan.cut_at_s < plan.daemon_restart_at_s
    assert plan.faults_end_s < run_s / 2
    assert plan.renew_every_s < plan.lease_s


def _sawtooth(t: float, phase: float, period: float = 40.0, height: float = 24.0) -> float:
    return 250.0 + height * (((t + phase) % period) / period)


@pytest.mark.parametrize("phase", [0.0, 7.0, 13.0, 21.0, 30.0, 36.0])
def test_a_level_that_cycles_without_growing_passes_wherever_the_window_cuts_it(
    phase: float,
) -> None:
    # Ten minutes, the CI form: a 24 MB sawtooth every 40 s tilts a plain line by up to
    # ±170 MB in 12 h, far over the budget; the cycle means are flat.
    run_s = 600.0
    pts = series(lambda t: _sawtooth(t, phase), run_s)
    window = second_half(pts, run_s)
    plain = fit_line(window)
    assert plain is not None
    g = judge("daemon.rss_mb", "MB", pts, Budget("relative", 5), run_s)
    assert g.verdict == PASS, g.detail
    assert g.line is not None and g.line.cycle_samples == 4
    assert abs(g.line.projected) < 1.0 < abs(plain.projected) or phase == 0.0


@pytest.mark.parametrize("phase", [0.0, 13.0, 30.0])
def test_a_leak_under_a_cycle_still_fails(phase: float) -> None:
    # 2 MB an hour under the sawtooth: 24 MB in 12 h, about 9 % of the level.
    pts = series(lambda t: _sawtooth(t, phase) + 2.0 * t / 3600.0)
    g = judge("daemon.rss_mb", "MB", pts, Budget("relative", 5), RUN_S)
    assert g.verdict == FAIL, g.detail
    assert g.line is not None and g.line.projected == pytest.approx(24.0, rel=0.05)


def test_noise_without_a_cycle_is_fitted_as_it_is() -> None:
    rng = random.Random(3)
    values = [rng.gauss(0, 1.0) for _ in range(180)]
    assert cycle_length(values) is None


def test_a_rate_that_drifts_with_the_machine_load_passes() -> None:
    # CPU under a shared machine: flat underneath, with the load of other work coming and
    # going for minutes at a time (here a rise of 8 % core over the last two minutes of a
    # ten-minute run, then the end). Sample to sample it is smooth, so the plain standard
    # error of 10-s samples calls that drift growth; block means see it as noise.
    rng = random.Random(11)
    pts = [
        (float(t), 42.0 + (8.0 if 450 <= t < 570 else 0.0) + rng.gauss(0, 1.0))
        for t in range(0, 601, 10)
    ]
    budget = Budget("relative", 300, noise_se=2.0, rate=True)
    g = judge("daemon.cpu_pct", "% core", pts, budget, 600.0)
    assert g.verdict == PASS, g.detail
    assert g.line is not None and g.line.block_samples == 3
    assert "means of 3-sample blocks" in g.detail
    plain = fit_line(second_half(pts, 600.0))
    assert plain is not None
    # The same drift judged on raw samples would have failed.
    assert plain.projected - 2.0 * plain.stderr_per_h * 12 > 3.0 * plain.mean


def test_a_rate_that_climbs_block_after_block_still_fails() -> None:
    rng = random.Random(12)
    # +1 % core a minute: 720 % core in 12 h.
    pts = [(float(t), 40.0 + t / 60.0 + rng.gauss(0, 2.0)) for t in range(0, 601, 10)]
    g = judge(
        "daemon.cpu_pct", "% core", pts, Budget("relative", 300, noise_se=2.0, rate=True), 600.0
    )
    assert g.verdict == FAIL, g.detail


def test_a_thread_that_comes_and_goes_is_not_a_leak() -> None:
    # Four threads, and a fifth for a few seconds now and then (a reconnect, a timer),
    # more often towards the end of the run.
    pts = series(lambda t: 5.0 if (t > 3000 and t % 120 == 0) or t % 600 == 0 else 4.0)
    g = judge("hub.threads", "threads", pts, Budget("absolute", 1, floor=True), RUN_S)
    assert g.verdict == PASS, g.detail
    assert "floor of each 6-sample block" in g.detail
    # Without the floor the same curve tilts the line.
    tilted = judge("hub.threads", "threads", pts, Budget("absolute", 1), RUN_S)
    assert tilted.line is not None and tilted.line.projected > 1.0


def test_a_thread_that_stays_fails_the_floor() -> None:
    # One more thread every ten minutes, each staying.
    pts = series(lambda t: 4.0 + t // 600)
    g = judge("hub.threads", "threads", pts, Budget("absolute", 1, floor=True), RUN_S)
    assert g.verdict == FAIL, g.detail
    assert g.line is not None and 55.0 < g.line.projected < 80.0


def test_a_floor_budget_is_not_also_a_noisy_rate() -> None:
    with pytest.raises(ValueError, match="not both"):
        Budget("absolute", 1, floor=True, noise_se=2.0)


def test_the_short_forms_memory_budget_forgives_a_noisy_sawtooth_not_a_gross_leak() -> None:
    # Ten minutes: a 20 MB sawtooth every 40 s whose peaks wander by a few MB (what the
    # daemon's memory does) passes the short budget with its noise allowance; a leak of
    # 60 MB an hour under the same sawtooth does not.
    from hil.soak.soak_budgets import BY_NAME, SHORT

    budget = BY_NAME["daemon.anon_mb"].budget(SHORT)
    rng = random.Random(21)
    noisy = series(lambda t: _sawtooth(t, 0.0, height=20.0) - 95.0 + rng.gauss(0, 3.0), 600.0)
    g = judge("daemon.anon_mb", "MB", noisy, budget, 600.0)
    assert g.verdict == PASS, g.detail
    leak = series(
        lambda t: _sawtooth(t, 0.0, height=20.0) - 95.0 + rng.gauss(0, 3.0) + t / 60.0, 600.0
    )
    g = judge("daemon.anon_mb", "MB", leak, budget, 600.0)
    assert g.verdict == FAIL, g.detail


def _aliased_sawtooth(step_s: float, seed: int, leak_mb_h: float = 0.0) -> list[Point]:
    # The daemon's memory: a 20 MB climb handed back every 41.3 s (not a whole number of
    # samples at either rate), 0.5 MB of jitter, 155 MB underneath.
    rng = random.Random(seed)
    phase = rng.uniform(0.0, 41.3)
    n = int(RUN_S / step_s) + 1
    return [
        (
            k * step_s,
            155.0
            + 20.0 * (((k * step_s + phase) % 41.3) / 41.3)
            + rng.gauss(0.0, 0.5)
            + leak_mb_h * k * step_s / 3600.0,
        )
        for k in range(n)
    ]


def test_memory_read_every_second_resolves_a_cycle_that_ten_second_samples_alias() -> None:
    # Why the long run reads memory every second: the cycle means of 10-s samples scatter
    # by about the whole 5 % budget (0.65 MB/h at 155 MB) in half an hour.
    coarse, fine = [], []
    for seed in range(8):
        for step, into in ((10.0, coarse), (1.0, fine)):
            g = judge(
                "daemon.anon_mb", "MB", _aliased_sawtooth(step, seed), Budget("relative", 5), RUN_S
            )
            assert g.line is not None
            into.append(abs(g.line.slope_per_h))
    assert max(fine) < 0.65, fine
    assert sum(fine) < 0.5 * sum(coarse), (fine, coarse)


def test_a_leak_read_every_second_still_fails() -> None:
    for seed in range(3):
        pts = _aliased_sawtooth(1.0, seed, leak_mb_h=1.5)
        g = judge("daemon.anon_mb", "MB", pts, Budget("relative", 5), RUN_S)
        assert g.verdict == FAIL, g.detail
        assert g.line is not None and g.line.slope_per_h == pytest.approx(1.5, abs=0.6)
