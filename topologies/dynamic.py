"""Neighbourhoods that change: with the state (a radius), with the update (random partners), or in time
(communication every ``period`` updates).

Masks follow :mod:`confide.topologies.graphs`: ``mask[..., i, j]`` True means agent ``j`` is in N_i.
Every mask here is symmetric with a False diagonal.

* :func:`radius_mask` is state dependent. AS/SS Eq. 16 sums over N_i *inside* the expectation over
  states, so the neighbourhood is a per-sample mask ``[M, N, N]`` over the update batch (decision 10).
* :func:`random_partners` is the sparse protocol of AS Sec. 5.3 (one random partner) and SS App. A.4
  (m random partners), redrawn every update (decision 13).
* :func:`communication_round` is the reduced-frequency protocol (talk every 2 updates in both papers);
  in a gap an agent drops xi_{N_i} and both penalty terms (decision 9).
"""

from __future__ import annotations

import math

import numpy as np

#: Default slack on the radius test. Positions are normalised to about [0, 1], where float32 rounding
#: is ~1e-7; 1e-6 absorbs it (so agents exactly ``radius`` apart stay neighbours) and is far below any
#: distance an environment distinguishes (C. Predation moves by 1/30 per step).
RADIUS_ATOL = 1e-6


def radius_mask(positions: np.ndarray, radius: float, *, atol: float = RADIUS_ATOL) -> np.ndarray:
    """Neighbours by distance: j is in N_i iff ``||x_i - x_j||_2 <= radius`` (boundary included).

    Args:
        positions: ``[..., N, D]`` float agent positions, already normalised by the environment
            (C. Predation passes ``x / 30`` and ``radius = 0.1``, decision 1). Leading axes are
            samples (time x episode flattened, or any batch shape).
        radius: the neighbourhood radius in the same normalised units, finite and > 0.
        atol: absolute slack, so the comparison is ``distance <= radius + atol``. A distance that is
            exactly ``radius`` on paper (e.g. ``0.4 - 0.3``, which is ``0.10000000000000003`` in
            float64) counts as inside. Pass 0 for the bare float comparison.

    Returns:
        ``[..., N, N]`` bool, symmetric, diagonal False. Distances are computed in float64 from one
        broadcast difference (memory ``M * N * N * D``), with no loop over agents.
    """
    x = np.asarray(positions)
    if x.ndim < 2 or x.shape[-1] < 1:
        raise ValueError(f"positions must have shape [..., N, D] with D >= 1, got {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"positions must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("positions contain NaN or infinity")
    if not _is_real(radius) or not math.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be finite and > 0, got {radius!r}")
    if not _is_real(atol) or not math.isfinite(atol) or atol < 0:
        raise ValueError(f"atol must be finite and >= 0, got {atol!r}")
    diff = x[..., :, None, :] - x[..., None, :, :]  # [..., N, N, D]; diff[j, i] == -diff[i, j] exactly
    distance = np.sqrt(np.einsum("...d,...d->...", diff, diff))
    mask = distance <= radius + atol
    n = x.shape[-2]
    mask[..., np.arange(n), np.arange(n)] = False
    return mask


def _is_real(x: object) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def random_partners(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Every agent draws ``m`` distinct partners uniformly from the others; links are made symmetric.

    This is SS App. A.4's "each agent randomly selects m agents" and, with ``m = 1``, AS Sec. 5.3's
    "one random partner". Agent i talks to j if i chose j *or* j chose i, so an agent has at least
    ``m`` neighbours and may have more (up to ``n - 1``). For any pair, the probability of a link is
    ``1 - (1 - m / (n - 1))**2``.

    Args:
        n: number of agents, >= 2.
        m: partners each agent draws, ``1 <= m <= n - 1``.
        rng: the generator to draw from (consumes one ``[n, n]`` block of uniforms per call).

    Returns:
        ``[N, N]`` bool, symmetric, diagonal False.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"random partners need n >= 2 agents, got {n!r}")
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 1 <= m <= n - 1:
        raise ValueError(f"partners m must be an integer with 1 <= m <= n - 1 = {n - 1}, got {m!r}")
    n, m = int(n), int(m)
    keys = rng.random((n, n))
    np.fill_diagonal(keys, np.inf)  # never choose oneself: self is the unique largest key in its row
    chosen = np.argpartition(keys, m - 1, axis=1)[:, :m]  # [N, m]: the m smallest keys of each row
    mask = np.zeros((n, n), dtype=bool)
    mask[np.arange(n)[:, None], chosen] = True
    return mask | mask.T


def communication_round(update: int, period: int) -> bool:
    """True when agents exchange messages at ``update`` (0-based): ``update % period == 0``.

    ``period = 1`` talks every update; ``period = 2`` is the papers' half frequency, talking at
    updates 0, 2, 4, ...
    """
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
        raise ValueError(f"period must be an integer >= 1, got {period!r}")
    if isinstance(update, bool) or not isinstance(update, int | np.integer) or update < 0:
        raise ValueError(f"update must be an integer >= 0, got {update!r}")
    return int(update) % int(period) == 0
