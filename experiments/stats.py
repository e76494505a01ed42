"""Small, explicit statistics for reports: means with Student-t 95% intervals across seeds.

With three seeds a bootstrap interval is degenerate; the t interval is the honest choice and is wide.
"""

from __future__ import annotations

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
