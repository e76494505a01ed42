"""The aggregate statistics: rliable's published test matrices as golden values, and properties of the
stratified bootstrap (determinism from an explicit generator, coverage of the point, symmetry of P(X > Y))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from confide.experiments.stats import (
    improvement,
    iqm,
    iqm_ci,
    mean_ci,
    probability_of_improvement,
    probability_of_improvement_ci,
    rank_test_p,
)

# rliable tests/rliable/metrics_test.py: 4 runs × 2 tasks and 3 runs × 2 tasks.
X = np.array([[1, 2], [2, 2], [1, 1], [2, 1]])
Y = np.array([[1, 1], [2, 2], [3, 3]])
# rliable tests/library_test.py: 5 runs × 16 tasks and the same with its runs in reverse order.
RUNS = np.arange(80).reshape(5, 16)


def test_rliable_golden_values():
    assert iqm(X) == 1.5 and iqm(Y) == 2
    assert probability_of_improvement(X, Y) == pytest.approx(1 / 3, abs=1e-7)  # ties count a half


def test_rliable_library_matrices_point_values_and_strict_intervals():
    flipped = np.flip(RUNS, axis=0)
    assert iqm(RUNS) == iqm(flipped) == 39.5
    assert probability_of_improvement(RUNS, flipped) == 0.5
    point, lo, hi = iqm_ci(RUNS, np.random.default_rng(0), reps=100)
    assert point == 39.5 and lo < point < hi


def test_iqm_trims_a_quarter_from_each_end():
    assert iqm(np.array([0.0, 1, 2, 3, 100])) == 2.0  # int(0.25·5) = 1 cut each side: mean of 1, 2, 3
    assert iqm(np.array([0.2, 0.4, 9.0])) == pytest.approx(np.mean([0.2, 0.4, 9.0]))  # 3 runs: nothing cut


def test_intervals_are_pinned_by_the_generator():
    x, y = np.random.default_rng(1).normal(size=(2, 6, 3))
    assert iqm_ci(x) == iqm_ci(x)  # the default generator is seeded afresh each call
    assert iqm_ci(x, np.random.default_rng(7)) == iqm_ci(x, np.random.default_rng(7))
    assert iqm_ci(x, np.random.default_rng(7)) != iqm_ci(x, np.random.default_rng(8))
    assert probability_of_improvement_ci(x, y) == probability_of_improvement_ci(x, y)


def test_one_seed_beating_every_other_gives_one_and_a_bad_shape_is_refused():
    assert probability_of_improvement_ci(np.array([3.0, 4, 5]), np.array([0.0, 1, 2])) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="task"):
        probability_of_improvement(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="non-empty"):
        iqm(np.array([]))


def test_mean_ci_is_the_t_interval():
    mean, lo, hi = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert mean == 2 and hi - mean == pytest.approx(4.302652729911275 / np.sqrt(3))


def _scores(tasks: int):
    runs = st.integers(1, 6)
    return runs.flatmap(lambda n: arrays(np.float64, (n, tasks), elements=st.floats(-5, 5)))


pairs = st.integers(1, 3).flatmap(lambda tasks: st.tuples(_scores(tasks), _scores(tasks)))


@settings(max_examples=40, deadline=None)
@given(pairs)
def test_probability_of_improvement_is_antisymmetric(pair):
    x, y = pair
    p, lo, hi = probability_of_improvement_ci(x, y, reps=200)
    assert p + probability_of_improvement(y, x) == pytest.approx(1.0) and 0 <= lo <= hi <= 1


@settings(max_examples=40, deadline=None)
@given(pairs, st.floats(-3, 3), st.floats(0.1, 10))
def test_the_iqm_interval_moves_with_an_affine_change_of_the_scores(pair, shift, scale):
    m, _ = pair
    point, lo, hi = iqm_ci(m, reps=200)
    assert lo <= hi
    moved = iqm_ci(m * scale + shift, reps=200)  # the same resamples (same generator), trim_mean is affine
    assert moved == pytest.approx((point * scale + shift, lo * scale + shift, hi * scale + shift), abs=1e-6)


def test_rank_test_is_exact_with_ties():
    assert rank_test_p([3.0, 4, 5], [0.0, 1, 2]) == pytest.approx(1 / 20)  # the best of C(6, 3) splits
    # x = (1, 1, 2), y = (0, 1, 0): U = 8; of the 20 splits of {0, 0, 1, 1, 1, 2} three reach 8 (x takes
    # the 2 and two of the three 1s), none more
    assert rank_test_p([1.0, 1, 2], [0.0, 1, 0]) == pytest.approx(3 / 20)
    assert rank_test_p([1.0, 1], [1.0, 1]) == 1.0
    assert (
        rank_test_p(np.arange(40.0), np.arange(40.0) - 30) < 1e-4
    )  # C(80, 40) splits: the normal approximation


def test_a_reliable_improvement_needs_both_the_interval_and_the_rank_test():
    three = improvement([3.0, 4, 5], [0.0, 1, 2])
    assert (three.p, three.lo, three.hi, three.n, three.m) == (1.0, 1.0, 1.0, 3, 3) and three.reliable()
    two = improvement([3.0, 4], [0.0, 1])
    assert (two.lo, two.rank_p) == (1.0, pytest.approx(1 / 6)) and not two.reliable()
    assert improvement([3.0, np.nan, 4, 5], [0.0, 1, 2, np.inf]).n == 3  # non-finite scores left out
