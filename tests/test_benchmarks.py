"""The benchmarks' own arithmetic and wiring, on tiny sizes (the measurements themselves are not tests)."""

import pytest

from confide.benchmarks import end_to_end, peers, scaling, soak
from confide.benchmarks.networks import update_flops


def test_update_flops_counts_the_products_that_must_be_done():
    # Per sample and head: forward 2·(N·128 + 128·64 + 64·2), backward twice that except layer 1's input
    # gradient: 2·(2·N·128 + 3·128·64 + 3·64·2). N = 8 on 960 samples, by hand:
    assert update_flops(8, 960) == 2 * 960 * 64 * (2 * 8 * 128 + 3 * 128 * 64 + 3 * 64 * 2) == 3_318_743_040


def test_flop_limited_rate_is_960_env_steps_per_three_updates_at_the_peak():
    # At 95 GFLOP/s: 960 / (3 · 3.3187 GFLOP / 95 GFLOP/s) = 9,160 env-steps/s at N = 8.
    assert end_to_end.flop_limited_rate(8, 95.0) == pytest.approx(960 * 95e9 / (3 * 3_318_743_040))


def test_training_rate_runs_the_trainers_update_loop():
    rate, share = end_to_end.training_rate(2, updates=1)
    assert rate > 0 and 0 < share < 1


def test_scaling_cell_reports_time_and_memory():
    r = scaling.cell(2, 60, repeats=1)
    assert r["seconds"] > 0 and r["workspace_mib"] >= 0 and r["peak_rss_mib"] > 0
    # 4 heads of 2 → 128 → 64 → 2: (2·128 + 128 + 128·64 + 64 + 64·2 + 2) floats, 4 copies.
    assert r["param_state_mib"] == pytest.approx(4 * 4 * 4 * 8770 / 2**20)


def test_peer_rows_average_the_last_tenth_of_training():
    row = peers._row(1000, 2.0, [float(x) for x in range(20)])
    assert row["frames_per_s"] == 500 and row["first_return"] == 0 and row["final_return"] == 18.5


def test_soak_ratio_leaves_out_minute_zero(capsys):
    log = soak.RssLog(minutes=30)
    log.samples = [(0.0, 0, 100.0), (1.0, 10, 200.0), (2.0, 20, 210.0)]
    assert log.ratio() == pytest.approx(1.05)
    assert soak.rss_mib() > 0
