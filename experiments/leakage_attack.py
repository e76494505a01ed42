"""The attack of the leakage study: per (algorithm, view), the learned attack on screened features, its
shuffled-secret control, the T0 baseline and the paired excess over it.

The first half of the pairs of shadow runs trains, the second half tests (disjoint seeds). The attack
keeps the ``⌊n_train / 4⌋`` features that best separate the secrets on the training runs (``screen``:
with ~800 features and tens of runs, L2 logistic regression on all of them interpolates noise and
missed even plaintext rewards). ``privacy.estimators.leakage_with_controls`` is composed here with
*common random numbers*: a view's attack and its T0 baseline use the same generator seed (same CV
folds, same bootstrap resamples), so a view that adds nothing to behaviour (identical features, e.g.
every view of a message-free algorithm) reproduces the baseline exactly and its excess is exactly 0
rather than a second noisy fit.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from confide.privacy.estimators import AttackResult, LeakageReport, compare, learned_attack

if TYPE_CHECKING:
    from confide.experiments.leakage_study import LeakStudy

RUNS_PER_FEATURE = 4  # the attack keeps ⌊n_train / 4⌋ screened features (see ``screened_attack``)


def screen(features: np.ndarray, secrets: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns of ``features [n, F]`` that best separate the 0/1 ``secrets`` on these
    runs: largest |mean₁ − mean₀| / pooled std (a column constant within each class but not between
    them scores ~inf, a constant column 0); ties in column order."""
    x, y = np.asarray(features, dtype=np.float64), np.asarray(secrets).astype(bool)
    a, b = x[y], x[~y]
    sd = np.sqrt((a.var(axis=0) + b.var(axis=0)) / 2)
    score = np.abs(a.mean(axis=0) - b.mean(axis=0)) / (sd + 1e-12 * (1 + np.abs(x).max(axis=0)))
    return np.argsort(-score, kind="stable")[:k]


def screened_attack(
    x_train: np.ndarray,
    s_train: np.ndarray,
    x_test: np.ndarray,
    s_test: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
) -> AttackResult:
    """``learned_attack`` on the ``⌊n_train / RUNS_PER_FEATURE⌋`` columns ``screen`` picks on the training
    runs (never on the test runs, so the held-out numbers stay honest)."""
    cols = screen(x_train, s_train, max(1, len(s_train) // RUNS_PER_FEATURE))
    return learned_attack(x_train[:, cols], s_train, x_test[:, cols], s_test, rng, n_bootstrap=n_bootstrap)


def analyse(
    study: LeakStudy, features: dict[str, dict[str, np.ndarray]], secrets: np.ndarray, n_bootstrap: int = 1000
) -> dict[tuple[str, str], LeakageReport]:
    """Reports per (algorithm, view) from ``features[algo][view] [runs, F]`` and ``secrets [runs]``."""
    train_idx, test_idx = study.split()
    s_tr, s_te = secrets[train_idx], secrets[test_idx]
    reports: dict[tuple[str, str], LeakageReport] = {}
    for algo in study.algos:
        crn = [study.seed, zlib.crc32(algo.encode())]  # shared by every view of this algorithm and T0
        memo: dict[tuple[int, bytes], Any] = {}

        def attack(x: np.ndarray, shuffle: bool, crn: list[int] = crn, memo: dict = memo) -> Any:
            """The attack (or its shuffled control) on ``x``; views with identical features share it."""
            key = (int(shuffle), hashlib.sha256(np.ascontiguousarray(x)).digest())
            if key not in memo:
                rng = np.random.default_rng([*crn, int(shuffle)])
                y_tr, y_te = s_tr, s_te
                if shuffle:  # as estimators.shuffled_control, with the screening inside
                    perm_rng, rng = rng.spawn(2)
                    y_tr, y_te = perm_rng.permutation(s_tr), perm_rng.permutation(s_te)
                memo[key] = screened_attack(x[train_idx], y_tr, x[test_idx], y_te, rng, n_bootstrap)
            return memo[key]

        baseline = attack(features[algo]["T0"], False)
        for v, view in enumerate(study.views):
            x = features[algo][view]
            result = attack(x, False)
            excess = compare(result, baseline, np.random.default_rng([*crn, 2, v]), n_bootstrap)
            reports[(algo, view)] = LeakageReport(result, attack(x, True), baseline, excess)
    return reports
