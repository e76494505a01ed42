"""The exact DPO iteration (Eq. 17) on the four 2×2 cooperative matrix games of DPO App. C (Fig. 11).

No sampling, no critic, no learning noise: each agent's advantage is computed exactly from the payoff
matrix and the other agent's old policy, and each agent's Eq. 17 maximisation over its one free
probability is solved numerically.

The game (DPO Table 3, ``confide.envs.matrix_games``): agent 1 plays action 0 with probability ``p``,
agent 2 plays action 0 with probability ``q``; the team payoff is ``a`` for (0, 0), ``b`` for (0, 1),
``c`` for (1, 0) and ``d`` for (1, 1), shared by both agents, one shot (γ = 0), so
``J(p, q) = pq·a + p(1−q)·b + (1−p)q·c + (1−p)(1−q)·d``. Games (a, b, c, d): 1 = (5, 7, 6, 4),
2 = (1, 3, 5, 4), 3 = (7, 1, 1, 3), 4 = (20, 0, 0, 10).

Eq. 17, for agent i with N = 2::

    π_new^i = argmax_{π^i}  (1/N)·L^i_{π_old}(π^i) − M̂·√KL(π_old^i ‖ π^i) − C·KL(π_old^i ‖ π^i)
    L^i_{π_old}(π^i) = E_{a_i∼π^i}[A^i_old(a_i)],  A^i_old(a_i) = E_{a_−i∼π_old^−i}[r(a_i, a_−i)] − J(π_old).

Since ``E_{a_i∼π_old^i}[A^i_old] = 0``, the gain is computed as ``(x − x_old)·(A^i(0) − A^i(1))`` for the
agent's new probability ``x`` of action 0 (the same number, but exactly 0 at ``x = x_old``), so the
objective at the old policy is exactly 0. Both agents update at once from the same π_old (Jacobi).

Decision 7 (``/work/shared/papers/README.md``): with the constant the theorem requires,
``M̂ = √((N−1)/N) · 2·r_max/(1−γ)`` with γ = 0 and ``r_max = max |payoff|`` — the paper prints the square
root over the whole product, which is the wrong place (the Cauchy–Schwarz step of Eq. 14 gives
``√((N−1)/N)·M̃`` with ``M̃ = 2r_max/(1−γ)``) — the √KL penalty's slope at π_old exceeds the gain's, so
the argmax is π_old and the iteration does not move. That is a true property, not a bug: with binary
actions Pinsker gives ``√KL(x_old‖x) ≥ √2·|x − x_old|``, so the penalty is at least
``√2·M̂·|x − x_old| = 2·r_max·|x − x_old|`` while the gain is at most ``r_max·|x − x_old|``. To draw
Fig. 11 one needs a scaled-down M̂ (``FIG11_M_HAT = 0.1``, user-settable) and C = 10; J then rises and
converges. Monotonic improvement of J is the theorem's promise only for M̂ at least its constant; with a
scaled-down M̂ it is an empirical property of these four games (tested on them, not on random payoffs).

Starting policies (our choice; the paper does not state Fig. 11's): ``FIG11_STARTS``. They are picked so
the figure shows both outcomes the paper describes: games 1 and 2 stop at a sub-optimum (game 1 at the
(1, 0) joint action worth 6 < 7, game 2 near the (1, 1) joint action worth 4 < 5), games 3 and 4 climb to
their optimum (7 and 20) from the side of the coordination threshold that leads there. Even where the
limit is "the" optimum, the iteration stops short of the corner: the √KL slope ``M̂/√(2x(1−x))`` grows
without bound near a deterministic policy, so the fixed point is where it equals the gain's slope.

Numerical method (``dpo_exact_step``): each agent's objective is a function of one probability ``x`` in
``[PROB_FLOOR, 1 − PROB_FLOOR]``; it is not smooth at ``x_old`` (√KL has a kink there) and need not be
concave on either side, so each side of ``x_old`` is searched separately over the step length
``δ = |x − x_old|``: a geometric grid of ``δ`` (from 1e-12 of the side's length up to all of it) locates the
best bracket, then ``scipy.optimize.minimize_scalar(method="bounded")`` refines inside it (relative
precision ~1e-8 of ``δ``, so tiny steps are found as accurately as large ones). The best of both sides is
taken only if its objective is strictly above the objective at ``x_old`` (exactly 0); otherwise the agent
stays. So a step never lowers an agent's Eq. 17 objective. KL between Bernoulli distributions is computed
as ``x_old·φ(δ/x_old) + (1−x_old)·φ(−δ/(1−x_old))`` with ``φ(u) = u − log1p(u) ≥ 0`` (series for small u), a
sum of non-negative terms that stays accurate for ``δ`` down to 1e-15.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.optimize import minimize_scalar

from confide.envs.matrix_games import MATRIX_GAMES, MatrixGame

PROB_FLOOR = 1e-6
"""Probabilities stay in ``[PROB_FLOOR, 1 − PROB_FLOOR]`` so KL stays finite."""

N_AGENTS = 2
FIG11_M_HAT = 0.1
"""The scaled-down M̂ used for Fig. 11 (decision 7); the theorem's constant freezes the iteration."""
FIG11_C = 10.0
"""C of Eq. 17; DPO App. C uses 10 in all matrix-game experiments."""
FIG11_STARTS: dict[str, tuple[float, float]] = {
    "matrix_game_1": (0.3, 0.7),
    "matrix_game_2": (0.5, 0.5),
    "matrix_game_3": (0.5, 0.5),
    "matrix_game_4": (0.5, 0.5),
}
"""Stated starting policies ``(p0, q0)`` per game for Fig. 11 (see the module docstring)."""

_GRID_POINTS = 48
_SERIES_CUTOFF = 1e-3

Payoff = MatrixGame | np.ndarray | Sequence[float] | Sequence[Sequence[float]]
"""A game: a ``MatrixGame``, Table 3's ``(a, b, c, d)``, or a ``[2, 2]`` matrix ``payoff[a1, a2]``."""


def payoff_matrix(payoff: Payoff) -> np.ndarray:
    """The ``[2, 2]`` float64 matrix ``payoff[a1, a2]`` of a game given in any ``Payoff`` form."""
    if isinstance(payoff, MatrixGame):
        return np.array(payoff.payoff, dtype=np.float64)
    r = np.asarray(payoff, dtype=np.float64)
    if r.shape == (4,):
        r = r.reshape(2, 2)
    if r.shape != (2, 2):
        raise ValueError(f"payoff must be (a, b, c, d) or a [2, 2] matrix, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("payoff entries must be finite")
    return r


def joint_value(payoff: Payoff, p: float, q: float) -> float:
    """``J(p, q)``, the expected team payoff (γ = 0, so ``V = J``)."""
    r = payoff_matrix(payoff)
    pa, qa = np.array([p, 1.0 - p]), np.array([q, 1.0 - q])
    return float(pa @ r @ qa)


def individual_advantage(payoff: Payoff, p: float, q: float, agent: Literal[0, 1]) -> np.ndarray:
    """``A^i_old(a_i)`` for ``a_i ∈ {0, 1}``: ``[2]`` float64, the other agent playing its old policy.

    ``agent`` is 0 for agent 1 (probability ``p``) and 1 for agent 2 (probability ``q``).
    """
    r = payoff_matrix(payoff)
    pa, qa = np.array([p, 1.0 - p]), np.array([q, 1.0 - q])
    if agent == 0:
        q_values = r @ qa
    elif agent == 1:
        q_values = pa @ r
    else:
        raise ValueError(f"agent must be 0 (probability p) or 1 (probability q), got {agent!r}")
    return q_values - float(pa @ r @ qa)


def bernoulli_kl(old: float | np.ndarray, new: float | np.ndarray) -> float | np.ndarray:
    """``KL(Bern(old) ‖ Bern(new))`` in nats, accurate for ``new`` arbitrarily close to ``old``.

    Both must lie in (0, 1); they broadcast, and a float is returned for scalar inputs.
    """
    old_a, new_a = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    delta = new_a - old_a
    kl = old_a * _phi(delta / old_a) + (1.0 - old_a) * _phi(-delta / (1.0 - old_a))
    return float(kl) if kl.ndim == 0 else kl


def _phi(u: np.ndarray) -> np.ndarray:
    """``u − log1p(u)`` (≥ 0 for u > −1), by its Taylor series where cancellation would bite."""
    u = np.asarray(u, dtype=np.float64)
    small = np.abs(u) < _SERIES_CUTOFF
    us = np.where(small, u, 0.0)
    series = us * us * (1 / 2 - us * (1 / 3 - us * (1 / 4 - us * (1 / 5 - us * (1 / 6 - us / 7)))))
    ul = np.where(small, 0.0, u)
    return np.where(small, series, ul - np.log1p(ul))


def _objective(gain_slope: float, old: float, new: np.ndarray, m_hat: float, c: float) -> np.ndarray:
    """Eq. 17's objective at new probabilities ``new`` (any shape) given ``(1/N)(A(0) − A(1))``."""
    kl = np.maximum(bernoulli_kl(old, new), 0.0)
    return gain_slope * (new - old) - m_hat * np.sqrt(kl) - c * kl


def _gain_slope(payoff: Payoff, p: float, q: float, agent: Literal[0, 1]) -> float:
    adv = individual_advantage(payoff, p, q, agent)
    return float(adv[0] - adv[1]) / N_AGENTS


def _check_prob(name: str, x: float) -> float:
    x = float(x)
    if not PROB_FLOOR <= x <= 1.0 - PROB_FLOOR:
        raise ValueError(f"{name} must lie in [{PROB_FLOOR}, 1 - {PROB_FLOOR}], got {x}")
    return x


def _check_coefficients(m_hat: float, c: float) -> None:
    if not (math.isfinite(m_hat) and m_hat >= 0):
        raise ValueError(f"m_hat must be finite and >= 0, got {m_hat}")
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"c must be finite and > 0 (Theorem 3.3), got {c}")


def individual_objective(
    game_payoff: Payoff,
    p: float,
    q: float,
    agent: Literal[0, 1],
    new_prob: float,
    m_hat: float,
    c: float,
) -> float:
    """Eq. 17's objective of one agent at its new probability ``new_prob`` of action 0.

    ``(1/N)·L^i_{π_old}(π^i) − M̂·√KL(π_old^i ‖ π^i) − C·KL(π_old^i ‖ π^i)`` with N = 2, π_old = (p, q);
    ``agent`` 0 moves ``p``, agent 1 moves ``q``. Exactly 0 at ``new_prob`` equal to the agent's old
    probability. ``new_prob`` must lie in ``[PROB_FLOOR, 1 − PROB_FLOOR]``.
    """
    p, q = _check_prob("p", p), _check_prob("q", q)
    new_prob = _check_prob("new_prob", new_prob)
    _check_coefficients(m_hat, c)
    old = p if agent == 0 else q
    slope = _gain_slope(game_payoff, p, q, agent)
    return float(_objective(slope, old, np.asarray(new_prob), m_hat, c))


def _phi_scalar(u: float) -> float:
    if abs(u) < _SERIES_CUTOFF:
        return u * u * (1 / 2 - u * (1 / 3 - u * (1 / 4 - u * (1 / 5 - u * (1 / 6 - u / 7)))))
    return u - math.log1p(u)


def _objective_scalar(slope: float, old: float, new: float, m_hat: float, c: float) -> float:
    """``_objective`` for one float, in plain ``math`` (the inner loop of the bounded search)."""
    delta = new - old
    kl = max(old * _phi_scalar(delta / old) + (1.0 - old) * _phi_scalar(-delta / (1.0 - old)), 0.0)
    return slope * delta - m_hat * math.sqrt(kl) - c * kl


def _argmax_agent(slope: float, old: float, m_hat: float, c: float) -> float:
    """The agent's Eq. 17 argmax over ``[PROB_FLOOR, 1 − PROB_FLOOR]``; ``old`` unless strictly better.

    ``slope`` is ``(1/N)(A(0) − A(1))``. Only the side the gain points to can beat ``old`` (on the other
    side the gain is ≤ 0 and both penalties ≥ 0). Pinsker for two actions (``KL ≥ 2δ²``) bounds the
    objective by ``(|slope| − √2·M̂)·δ − 2C·δ²``, so no step helps when ``|slope| ≤ √2·M̂`` (the theorem's
    M̂ always lands here) and none longer than ``(|slope| − √2·M̂)/(2C)`` does: the search is confined to
    that interval, first on a geometric grid of step lengths, then refined by a bounded scalar search in
    the best grid bracket.
    """
    direction = 1.0 if slope > 0.0 else -1.0
    excess = abs(slope) - math.sqrt(2.0) * m_hat
    room = (1.0 - PROB_FLOOR - old) if direction > 0 else (old - PROB_FLOOR)
    length = min(room, excess / (2.0 * c))
    if excess <= 0.0 or length <= 0.0:
        return old
    steps = length * np.geomspace(1e-12, 1.0, _GRID_POINTS)
    values = _objective(slope, old, old + direction * steps, m_hat, c)
    k = int(np.argmax(values))
    best_x, best_f = old + direction * float(steps[k]), float(values[k])
    res = minimize_scalar(
        lambda s: -_objective_scalar(slope, old, old + direction * s, m_hat, c),
        bounds=(float(steps[k - 1]) if k > 0 else 0.0, float(steps[k + 1]) if k + 1 < _GRID_POINTS else length),
        method="bounded",
        options={"xatol": 1e-300},
    )
    x = old + direction * float(res.x)
    f = _objective_scalar(slope, old, x, m_hat, c)
    if f > best_f:
        best_x, best_f = x, f
    if best_f <= 0.0:
        return old
    return min(max(best_x, PROB_FLOOR), 1.0 - PROB_FLOOR)


def dpo_exact_step(payoff: Payoff, p: float, q: float, m_hat: float, c: float) -> tuple[float, float]:
    """One Jacobi step of Eq. 17: both agents maximise their objective against the same ``(p, q)``.

    Returns ``(p_new, q_new)`` in ``[PROB_FLOOR, 1 − PROB_FLOOR]``; each agent's objective at its new
    probability is ≥ its value (0) at the old one, and an agent stays put unless it can do strictly better.
    """
    p, q = _check_prob("p", p), _check_prob("q", q)
    _check_coefficients(m_hat, c)
    p_new = _argmax_agent(_gain_slope(payoff, p, q, 0), p, m_hat, c)
    q_new = _argmax_agent(_gain_slope(payoff, p, q, 1), q, m_hat, c)
    return p_new, q_new


def theorem_m_hat(payoff: Payoff, n_agents: int = N_AGENTS, gamma: float = 0.0) -> float:
    """Theorem 3.3's constant ``√((N−1)/N) · 2·r_max/(1−γ)`` with ``r_max = max |payoff|`` (decision 7)."""
    if n_agents < 1:
        raise ValueError(f"n_agents must be >= 1, got {n_agents}")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    r_max = float(np.max(np.abs(payoff_matrix(payoff))))
    return math.sqrt((n_agents - 1) / n_agents) * 2.0 * r_max / (1.0 - gamma)
