"""Small, explicit statistics for reports, on numpy/scipy.

* ``iqm_ci`` and ``probability_of_improvement_ci``: rliable's interquartile mean and probability of
  improvement (Agarwal et al., 2021) on a (runs × tasks) matrix, with 95% percentile intervals from a
  stratified bootstrap drawn from an explicit generator (rliable's own seeding does not pin them). These
  aggregate figures, sweeps and the paper claims' checks; a claim also needs ``rank_test_p``, the exact
  Mann–Whitney test behind P(X > Y) (``Improvement.reliable``). With two or three seeds a bootstrap interval
  is optimistic (it cannot see beyond the seeds it has); reports show the seeds beside every interval.
* ``mean_ci``: the mean with a Student-t interval, kept where a mean is the quantity (per-update curves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def mean_ci(
    values: np.ndarray, axis: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the lower/upper bounds of a t confidence interval along ``axis``.

    With a single value the interval collapses to the value.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, mean, mean
    sem = x.std(axis=axis, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + level / 2, df=n - 1) * sem
    return mean, mean - half, mean + half


# --- rliable-style aggregates (Agarwal et al., 2021) on a (runs × tasks) score matrix -------------------

BOOTSTRAP_REPS = 10_000
BOOTSTRAP_SEED = 0
"""Every interval below draws from ``np.random.default_rng(BOOTSTRAP_SEED)`` unless given a generator:
the same scores give the same interval, whatever was computed before."""


def _matrix(scores: np.ndarray) -> np.ndarray:
    """A (runs × tasks) float matrix; a 1-D array is one task."""
    m = np.asarray(scores, dtype=float)
    m = m[:, None] if m.ndim == 1 else m
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (runs × tasks) matrix, got shape {m.shape}")
    return m


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all runs × tasks: the mean of the middle 50% (25% trimmed each side), robust
    to one outlying seed and less noisy than the median."""
    return float(stats.trim_mean(_matrix(scores), 0.25, axis=None))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): per task, the chance a run of X beats a run of Y (ties count a half; the Mann–Whitney
    U / (n·m)), averaged over tasks. x and y are (runs × tasks) with the same tasks."""
    return float(_poi(_matrix(x)[None], _matrix(y)[None])[0])


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``probability_of_improvement`` for a stack of resamples: x (reps, n, tasks), y (reps, m, tasks)."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x has {x.shape[-1]} task(s), y {y.shape[-1]}")
    a, b = x[:, :, None, :], y[:, None, :, :]
    wins = (a > b).mean(axis=(1, 2)) + 0.5 * (a == b).mean(axis=(1, 2))  # (reps, tasks)
    return wins.mean(axis=1)


def _resample(m: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified bootstrap: within each task, the runs drawn with replacement, independently per task."""
    idx = rng.integers(0, m.shape[0], size=(reps, m.shape[0], m.shape[1]))
    return np.take_along_axis(np.broadcast_to(m, (reps, *m.shape)), idx, axis=1)


def _percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def iqm_ci(
    scores: np.ndarray,
    rng: np.random.Generator | None = None,
    reps: int = BOOTSTRAP_REPS,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """IQM with a percentile interval from a stratified bootstrap over runs (tasks kept fixed)."""
    m = _matrix(scores)
    rng = np.random.default_rng(BOOTSTRAP_SEED) if rng is None else rng
    boot = np.concatenate(  # in chunks of ~4M resampled scores
        [
            stats.trim_mean(_resample(m, k, rng).reshape(k, -1), 0.25, axis=1)
            for k in _chunks(reps, max(1, 4_000_000 // m.size))
        ]
    )
    return (iqm(m), *_percentile_interval(boot, level))


def probability_of_improvement_ci(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator | None = None,
    reps: int = BOOTSTRAP_REPS,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """P(X > Y) with a percentile interval; X's and Y's runs are resampled independently, each within
    its tasks (rliable's stratified independent bootstrap)."""
    mx, my = _matrix(x), _matrix(y)
    rng = np.random.default_rng(BOOTSTRAP_SEED) if rng is None else rng
    boot = np.concatenate(  # in chunks: reps × n × m × tasks comparisons
        [
            _poi(_resample(mx, k, rng), _resample(my, k, rng))
            for k in _chunks(reps, max(1, 4_000_000 // (mx.size * my.shape[0])))
        ]
    )
    return (probability_of_improvement(mx, my), *_percentile_interval(boot, level))


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


EXACT_SPLITS = 50_000  # up to this many ways to split the pooled runs, the rank test enumerates them all


def rank_test_p(x: np.ndarray, y: np.ndarray) -> float:
    """One-sided p of the Mann–Whitney test that X's runs rank above Y's: the test behind P(X > Y) (its
    U / (n·m) is P(X > Y)). Exact, ties included, by enumerating every split of the pooled runs while
    there are at most ``EXACT_SPLITS`` (5 vs 5 seeds: 252); else the normal approximation with ties
    corrected. Unlike a percentile bootstrap on 2–5 seeds it keeps a false claim's rate at most α."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    exact = math.comb(len(x) + len(y), len(x)) <= EXACT_SPLITS
    method = stats.PermutationMethod(n_resamples=np.inf) if exact else "asymptotic"
    return float(stats.mannwhitneyu(x, y, alternative="greater", method=method).pvalue)


@dataclass(frozen=True)
class Improvement:
    """P(X > Y) with its bootstrap interval and the rank test's one-sided p. ``reliable``: X beats Y by
    both (the interval lies above 1/2 and p <= alpha); with 3 vs 3 seeds this needs every run of X above
    every run of Y (p = 1/20)."""

    p: float
    lo: float
    hi: float
    rank_p: float
    n: int
    m: int

    def reliable(self, alpha: float = 0.05) -> bool:
        return self.lo > 0.5 and self.rank_p <= alpha + 1e-12  # an exact p of 1/20 is alpha itself

    def text(self, left: str = "X", right: str = "Y") -> str:
        return (
            f"P({left} > {right}) = {self.p:.2f} [{self.lo:.2f}, {self.hi:.2f}], rank test p = "
            f"{self.rank_p:.2g}, {self.n} vs {self.m} seeds"
        )


def improvement(x: np.ndarray, y: np.ndarray) -> Improvement:
    """:class:`Improvement` of one task's per-seed scores x over y (non-finite scores dropped)."""
    x, y = finite(x), finite(y)
    return Improvement(*probability_of_improvement_ci(x, y), rank_test_p(x, y), len(x), len(y))


def finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]
