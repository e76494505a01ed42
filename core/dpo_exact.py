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
Fig. 11 one needs a scaled-down M̂ (``FIG11_M_HAT = 0.1``, user-settable) and C = 10 (``FIG11_C``); J
then rises and converges. (So on 2×2 games Theorem 3.4's monotonicity holds vacuously: J is constant.)

Monotonic J with a scaled-down M̂. The theorem promises ``J(π_new) ≥ J(π_old)`` only for M̂ at least its
constant. For two agents with two actions a direct bound covers any M̂ ≥ 0: an agent only moves (by
``δ``, in the direction its gain points) if its objective is positive, and since ``KL ≥ 2δ²`` that needs
``|gain slope| = |∂J/∂x|/2 > 2C·δ``; J is bilinear, so ``J(new) − J(old) = ∂_pJ·Δp + ∂_qJ·Δq + k·Δp·Δq``
with ``k = a − b − c + d``, hence ``J(new) − J(old) ≥ (4C − |k|/2)·(Δp² + Δq²) ≥ 0`` whenever
``C ≥ |a − b − c + d|/8``. The four games have |k| = 4, 3, 8, 30, so with C = 10 J never decreases on any
of them, for any M̂ (measured: the smallest per-step change along the Fig. 11 runs is +1e-10). With a
small C it can fail: payoffs (10, −3, −9, 8), p = 0.7, q = 0.2, M̂ = 0.1, C = 0.1 lower J by 8.5 in one step.

Starting policies (our choice; the paper does not state Fig. 11's): ``FIG11_STARTS``, (p0, q0) =
(0.3, 0.7), (0.95, 0.1), (0.5, 0.5), (0.5, 0.5) for games 1–4. They are picked so the figure shows both
outcomes the paper describes: games 1 and 2 stop at a sub-optimum (game 1 near the (1, 0) joint action,
worth 6 < 7; game 2 near (1, 1), worth 4 < 5), games 3 and 4 climb to their optimum (7 and 20) from the
side of the coordination threshold that leads there. With M̂ = 0.1, C = 10 (measured): game 1
J 5.46 → 5.968 in 839 steps, game 2 2.865 → 3.995 in 817, game 3 3.0 → 6.993 in 143, game 4
7.5 → 19.998 in 53 (converged to ``tol`` 1e-10; ``FIG11_ITERATIONS`` = 2000 leaves room). From
p0 = q0 = 0.5 games 1 and 2 reach their optimum instead; game 2 is trapped only from starts with p high
and q low. Even where the limit is "the" optimum the iteration stops short of the corner: the √KL slope
at π_old, ``M̂/√(2x(1−x))``, grows without bound near a deterministic policy, and an agent stops where it
equals its gain's slope. The same dead zone freezes game 1 at once near its mixed saddle point
(p ≈ 1/2, q ≈ 3/4, where both gains are nearly flat): another sub-optimum the scaled-down M̂ creates.

Numerical method (``dpo_exact_step``): each agent's objective is a function of one probability ``x`` in
``[PROB_FLOOR, 1 − PROB_FLOOR]``; it is not smooth at ``x_old`` (√KL has a kink there) and need not be
concave, so it is maximised over the step length ``δ = |x − x_old|`` on one side at a time. Only the side
the gain points to can beat ``x_old``; Pinsker (``KL ≥ 2δ²``) bounds the objective by
``(|gain slope| − √2·M̂)·δ − 2C·δ²``, so nothing beats ``x_old`` when ``|gain slope| ≤ √2·M̂`` and no step
longer than ``(|gain slope| − √2·M̂)/(2C)`` does. Inside that interval a geometric grid of ``δ`` (from
1e-12 of its length up to all of it) locates the best bracket, then
``scipy.optimize.minimize_scalar(method="bounded")`` refines inside it (relative precision ~1e-8 of ``δ``,
so tiny steps are found as accurately as large ones). The result is taken only if its objective is
strictly above the objective at ``x_old`` (exactly 0); otherwise the agent stays, so a step never lowers
an agent's Eq. 17 objective. KL between Bernoulli distributions is computed as
``x_old·φ(δ/x_old) + (1−x_old)·φ(−δ/(1−x_old))`` with ``φ(u) = u − log1p(u) ≥ 0`` (series for small u), a
sum of non-negative terms that stays accurate for ``δ`` down to 1e-15.
"""

from __future__ import annotations

import math
import os
import uuid
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
    "matrix_game_2": (0.95, 0.1),
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
        bounds=(
            float(steps[k - 1]) if k > 0 else 0.0,
            float(steps[k + 1]) if k + 1 < _GRID_POINTS else length,
        ),
        method="bounded",
        options={"xatol": 1e-300},
    )
    x = old + direction * float(res.x)
    f = _objective_scalar(slope, old, x, m_hat, c)
    if f > best_f:
        best_x = x
    best_x = min(max(best_x, PROB_FLOOR), 1.0 - PROB_FLOOR)
    # Judged by the same evaluation ``individual_objective`` uses, so "never below 0" holds exactly.
    return best_x if float(_objective(slope, old, np.asarray(best_x), m_hat, c)) > 0.0 else old


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


@dataclass(frozen=True, eq=False)
class DpoExactTrace:
    """One run of the exact Eq. 17 iteration.

    Attributes:
        label: the game's name (``"matrix_game_1"``…) or its ``(a, b, c, d)`` when given as numbers.
        payoff: ``[2, 2]`` float64, ``payoff[a1, a2]``.
        m_hat: M̂ of Eq. 17.  c: C of Eq. 17.
        p, q: ``[T + 1]`` float64, each agent's probability of action 0 at iterations 0…T (index 0 is the
            start; T ≤ the ``iterations`` asked for).
        J: ``[T + 1]`` float64, ``J(p[t], q[t])`` (expected team payoff, reward units).
        converged: the last step moved both probabilities by less than ``tol``.
    All arrays are read-only.
    """

    label: str
    payoff: np.ndarray
    m_hat: float
    c: float
    p: np.ndarray
    q: np.ndarray
    J: np.ndarray
    converged: bool

    @property
    def n_steps(self) -> int:
        """T, the number of Eq. 17 steps taken."""
        return len(self.p) - 1


def run_dpo_exact(
    payoff: Payoff,
    p0: float,
    q0: float,
    m_hat: float,
    c: float = FIG11_C,
    iterations: int = 100,
    tol: float = 1e-10,
) -> DpoExactTrace:
    """Iterate ``dpo_exact_step`` from ``(p0, q0)`` for at most ``iterations`` steps.

    Stops early, with ``converged=True``, after the first step that moves neither probability by ``tol``
    or more (that step is recorded). With ``theorem_m_hat(payoff)`` this happens at the first step.
    """
    p, q = _check_prob("p0", p0), _check_prob("q0", q0)
    _check_coefficients(m_hat, c)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    r = payoff_matrix(payoff)
    ps, qs, js = [p], [q], [joint_value(r, p, q)]
    converged = False
    for _ in range(iterations):
        p_new, q_new = dpo_exact_step(r, p, q, m_hat, c)
        moved = max(abs(p_new - p), abs(q_new - q))
        p, q = p_new, q_new
        ps.append(p)
        qs.append(q)
        js.append(joint_value(r, p, q))
        if moved < tol:
            converged = True
            break
    label = payoff.name if isinstance(payoff, MatrixGame) else str(tuple(float(v) for v in r.ravel()))
    arrays = [np.array(v, dtype=np.float64) for v in (r, ps, qs, js)]
    for a in arrays:
        a.setflags(write=False)
    return DpoExactTrace(label, arrays[0], float(m_hat), float(c), *arrays[1:], converged=converged)


FIG11_ITERATIONS = 2000
"""Step budget for Fig. 11: every ``FIG11_STARTS`` run converges (to ``tol`` 1e-10) well within it."""


def fig11_traces(
    m_hat: float = FIG11_M_HAT, c: float = FIG11_C, iterations: int = FIG11_ITERATIONS
) -> tuple[DpoExactTrace, ...]:
    """The four games of DPO App. C from ``FIG11_STARTS``, in order 1–4."""
    return tuple(run_dpo_exact(g, *FIG11_STARTS[g.name], m_hat, c, iterations) for g in MATRIX_GAMES)


def plot_dpo_exact(traces: Sequence[DpoExactTrace], path: str | os.PathLike[str]) -> Path:
    """Draw a Fig. 11 style figure and save it as a PNG at ``path`` atomically; returns the path.

    One column per trace: top row ``J(π_t)`` against the iteration t with the game's optimum dotted,
    bottom row ``p_t`` and ``q_t``. The PNG is written to a temporary file in the same directory, then
    moved over ``path`` with ``os.replace``, so readers never see a half-written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not traces:
        raise ValueError("plot_dpo_exact needs at least one trace")
    path = Path(path)
    fig = Figure(figsize=(3.2 * len(traces), 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(traces), squeeze=False)
    for col, tr in enumerate(traces):
        t = np.arange(len(tr.J))
        top, bottom = axes[0, col], axes[1, col]
        top.plot(t, tr.J, color="C0")
        top.axhline(float(tr.payoff.max()), color="0.5", linestyle=":", linewidth=1, label="optimum")
        top.set_title(
            f"{tr.label}\n(a, b, c, d) = {tuple(round(float(v), 3) for v in tr.payoff.ravel())}", fontsize=9
        )
        top.set_ylabel(r"$J(\pi_t)$" if col == 0 else "")
        bottom.plot(t, tr.p, color="C1", label="p")
        bottom.plot(t, tr.q, color="C2", linestyle="--", label="q")
        bottom.set_ylim(-0.03, 1.03)
        bottom.set_xlabel("iteration t")
        bottom.set_ylabel("policy" if col == 0 else "")
        if col == 0:
            top.legend(loc="lower right", fontsize=8)
            bottom.legend(loc="best", fontsize=8)
    m_hats = sorted({tr.m_hat for tr in traces})
    cs = sorted({tr.c for tr in traces})
    fig.suptitle(
        f"Exact DPO iteration (Eq. 17): M̂ = {', '.join(f'{m:g}' for m in m_hats)}, "
        f"C = {', '.join(f'{v:g}' for v in cs)}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as fh:  # ordinary permissions (umask), unlike mkstemp's 0600
            fig.savefig(fh, format="png", dpi=120)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
