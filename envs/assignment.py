"""Batched minimum-cost one-to-one assignment (the Hungarian matching of the MPE formation tasks).

For ``N ≤ 6`` the exact optimum is found by scoring all ``N!`` permutations at once (120 for the papers'
five agents: one gather and one argmin over ``[B, 120, N]``, no Python loop). Larger ``N`` falls back to
``scipy.optimize.linear_sum_assignment``, one call per episode. Ties between equally cheap matchings
(probability zero for continuous positions) go to the lexicographically first permutation.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
from scipy.optimize import linear_sum_assignment

BRUTE_FORCE_MAX_N = 6
"""Largest ``N`` solved by enumerating permutations (6! = 720)."""


@cache
def _permutations(n: int) -> np.ndarray:
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)  # [N!, N]
    perms.setflags(write=False)
    return perms


def min_cost_assignment(cost: np.ndarray) -> np.ndarray:
    """The column matched to each row by a minimum-total-cost perfect matching.

    Args:
        cost: ``[B, N, N]`` real, ``cost[b, i, j]`` = cost of giving column ``j`` (a landmark or target)
            to row ``i`` (an agent).

    Returns:
        ``[B, N]`` int64 ``col`` with ``col[b]`` a permutation of ``range(N)`` minimising
        ``Σ_i cost[b, i, col[b, i]]``.
    """
    cost = np.asarray(cost)
    if cost.ndim != 3 or cost.shape[1] != cost.shape[2]:
        raise ValueError(f"cost must have shape [B, N, N], got {cost.shape}")
    n = cost.shape[1]
    if n <= BRUTE_FORCE_MAX_N:
        perms = _permutations(n)  # [P, N]
        totals = cost[:, np.arange(n), perms].sum(axis=-1)  # [B, P]
        return perms[np.argmin(totals, axis=1)]
    return _scipy_assignment(cost)


def matched_costs(cost: np.ndarray) -> np.ndarray:
    """``[B, N]``: each row's cost under the minimum-cost matching of :func:`min_cost_assignment`."""
    col = min_cost_assignment(cost)
    return np.take_along_axis(np.asarray(cost), col[..., None], axis=2)[..., 0]


def _scipy_assignment(cost: np.ndarray) -> np.ndarray:
    """``[B, N]`` int64 via ``scipy.optimize.linear_sum_assignment``, one call per episode (N > 6)."""
    return np.stack([linear_sum_assignment(c)[1] for c in cost]).astype(np.int64)
