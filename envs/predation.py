"""Cooperative Predation (AS Sec. 5.1, SS Sec. 5.1): a batched cooperate-versus-defect dilemma on a line.

``N`` predators and one static prey live on the segment ``[0, 30]``. Each step every predator moves one
unit left or right (clipped at the walls). A predator *approaches* when its move points towards the prey,
judged on the state **before** the move; overshooting still counts and a predator exactly on the prey
approaches whichever way it moves. Per-step individual rewards depend only on who approached and on how
many (``k``) did, through one of two named reward schemes (decision 1 of ``papers/README.md``):

========  ==================  ==================  =======================================
scheme    all approach (k=N)  none (k=0)          mixed (0<k<N): approachers / others
========  ==================  ==================  =======================================
``as``    −1 each             −3 each             −4 / 0
``ss``    −1 each             −2N+1 each          −2N / 0
========  ==================  ==================  =======================================

Under ``ss`` "all approach" is the collective optimum for every ``N``; under ``as`` it is only for
``N ≤ 3`` (tie with one approacher at ``N = 4``, one approacher is best for ``N ≥ 5``), and all-defect is
not the worst joint action. The environment computes its exact optimum and worst case
(``optimal_collective_return``, ``worst_collective_return``) for any ``N`` and scheme. No capture event, no
early end: ``terminated`` is always False and ``truncated`` becomes True at step ``horizon``.

Choices (where the papers are silent), all in this module:
    * State ``[B, N]`` float32 is ``(x_i − x_prey) / 30`` in ``[−1, 1]``: the papers' state is
      ``x_i − x_prey``; we scale by 1/30 so networks see unit-scale inputs. ``raw_positions`` and
      ``prey_position`` give the unscaled positions.
    * Positions ``[B, N, 1]`` float32 are ``x_i / 30`` in ``[0, 1]``, so the topology's neighbour radius 0.1
      applies directly to ``|x_i − x_j| / 30``.
    * Action index 0 moves by −1, index 1 by +1.
    * ``reset`` draws, for each episode in batch order, ``N + 1`` values uniform in ``[0, 30)`` from the
      given generator (the ``N`` predators, then the prey). A batch of ``B`` episodes therefore equals ``B``
      single-episode environments reset one after another from the same generator.
    * Raw positions are kept in float64 so unit moves do not accumulate float32 rounding.
    * Private reward parameter (``draw_private_params``, issue 7): each agent's approach weight ``w_i``
      scales only agent i's own reward in the steps where agent i approaches (its cost of hunting:
      ``w_i × −1`` when all approach, ``w_i × `` the mixed-approacher payoff otherwise); the rewards of
      agents that do not approach are unchanged. Prior: ``w_i`` is 0.5 or 1.5 with probability ½ each,
      i.i.d. over agents (``APPROACH_WEIGHTS``; a binary secret, cheap or costly to hunt). Default
      ``None`` is the papers' rules exactly (as every ``w_i = 1``). With weights the collective payoff
      depends on *who* approaches: the optimum takes, for each ``k``, the ``k`` approachers whose
      weights give the best total (the extreme of a linear function over ``k``-subsets sits at the ``k``
      smallest or ``k`` largest weights), the worst case the other extreme; the all-defect floor does
      not depend on the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, check_actions

PredationScheme = Literal["as", "ss"]
PREDATION_SCHEMES: tuple[str, ...] = get_args(PredationScheme)

WORLD_LENGTH = 30.0
"""Length of the line world; positions live in ``[0, WORLD_LENGTH]``."""

MOVE_LEFT, MOVE_RIGHT = 0, 1
"""Action indices: 0 moves by −1, 1 moves by +1."""

APPROACH_WEIGHTS = (0.5, 1.5)
"""The two values of the prior of ``draw_private_params`` (each with probability ½)."""


def draw_private_params(rng: np.random.Generator, n_agents: int) -> np.ndarray:
    """Draw each agent's private approach weight from the prior: ``APPROACH_WEIGHTS[b]`` with
    ``b ~ Bernoulli(½)`` i.i.d.; ``[N]`` float64 (one ``rng.integers(0, 2, N)`` call)."""
    return np.asarray(APPROACH_WEIGHTS)[rng.integers(0, 2, size=n_agents)]


def scheme_payoffs(scheme: PredationScheme, n_agents: int) -> tuple[float, float, float, float]:
    """Per-agent per-step rewards ``(all_approach, none_approach, mixed_approacher, mixed_other)``.

    Decision 1: ``as`` = (−1, −3, −4, 0); ``ss`` = (−1, −2N+1, −2N, 0).
    """
    if scheme == "as":
        return -1.0, -3.0, -4.0, 0.0
    if scheme == "ss":
        return -1.0, float(-2 * n_agents + 1), float(-2 * n_agents), 0.0
    raise ValueError(f"unknown predation scheme {scheme!r}; known schemes: {', '.join(PREDATION_SCHEMES)}")


class CooperativePredation:
    """A batch of ``batch_size`` Cooperative Predation episodes (implements ``confide.envs.base.VecEnv``).

    Args:
        n_agents: number of predators ``N`` (≥ 2).
        batch_size: number of episodes ``B`` stepped at once (≥ 1).
        scheme: reward scheme, ``"ss"`` (default) or ``"as"`` (decision 1).
        horizon: steps per episode (≥ 1; the papers use 30).
        approach_weights: ``[N]`` private weights ``w_i`` ≥ 0 scaling agent i's reward when it
            approaches (default None: the papers' rules; see ``draw_private_params``).

    Shapes: state ``[B, N]`` float32, rewards ``[B, N]`` float32, terminated/truncated ``[B]`` bool,
    positions ``[B, N, 1]`` float32 (normalised), actions ``[B, N]`` integer in ``[0, 2)``.
    """

    n_actions: int = 2
    state_bounds: tuple[float, float] = (-1.0, 1.0)

    def __init__(
        self,
        n_agents: int,
        batch_size: int,
        scheme: PredationScheme = "ss",
        horizon: int = 30,
        approach_weights: Sequence[float] | np.ndarray | None = None,
    ):
        if n_agents < 2:
            raise ValueError(f"predation needs n_agents >= 2, got {n_agents}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.n_agents = int(n_agents)
        self.batch_size = int(batch_size)
        self.horizon = int(horizon)
        self.state_dim = self.n_agents
        self.scheme: PredationScheme = scheme
        # scheme_payoffs raises on an unknown scheme.
        self._all, self._none, self._mixed_approach, self._mixed_other = scheme_payoffs(scheme, self.n_agents)
        self.approach_weights: np.ndarray | None = None  # [N] float64, or None: the papers' rules
        if approach_weights is not None:
            w = np.array(approach_weights, dtype=np.float64)
            if w.shape != (self.n_agents,) or not np.all(np.isfinite(w) & (w >= 0)):
                raise ValueError(f"approach_weights must be {self.n_agents} finite values >= 0, got {w}")
            w.setflags(write=False)  # step() reads them from a table built once, below
            self.approach_weights = w
        self._x: np.ndarray | None = None  # [B, N] float64, raw predator positions in [0, 30]
        self._prey: np.ndarray | None = None  # [B, 1] float64, raw prey positions in [0, 30]
        self._offset: np.ndarray | None = None  # [B, N] float64, x − prey (its sign decides approach)
        self._t = 0
        # step() looks rewards up in a table instead of branching; the flat index of agent i is
        # k·2N + approached_i·N + i, and one small matmul of the approach mask gives k·2N + approached_i·N.
        n = self.n_agents
        self._reward_table = self._build_reward_table()  # [(N + 1)·2·N] float32
        self._index_weights = 2.0 * n * np.ones((n, n)) + n * np.eye(n)  # [N, N] float64
        self._agent_index = np.arange(n)  # [N] int64
        self._move = np.array([-1.0, 1.0])  # displacement of each action

    # ------------------------------------------------------------------ episode dynamics
    def reset(self, rng: np.random.Generator) -> Reset:
        """Draw predators and prey uniform in ``[0, 30)`` from ``rng`` (``N + 1`` values per episode)."""
        draws = rng.uniform(0.0, WORLD_LENGTH, size=(self.batch_size, self.n_agents + 1))
        return self.reset_to(draws[:, : self.n_agents], draws[:, self.n_agents])

    def reset_to(self, agent_x: np.ndarray, prey_x: np.ndarray) -> Reset:
        """Start episodes from given raw positions (for tests and diagnostics).

        Args:
            agent_x: ``[B, N]`` predator positions in ``[0, 30]``.
            prey_x: ``[B]`` prey positions in ``[0, 30]``.
        """
        agent_x = np.array(agent_x, dtype=np.float64)
        prey_x = np.array(prey_x, dtype=np.float64)
        if agent_x.shape != (self.batch_size, self.n_agents):
            expected = (self.batch_size, self.n_agents)
            raise ValueError(f"agent_x must have shape {expected}, got {agent_x.shape}")
        if prey_x.shape != (self.batch_size,):
            raise ValueError(f"prey_x must have shape {(self.batch_size,)}, got {prey_x.shape}")
        for name, arr in (("agent_x", agent_x), ("prey_x", prey_x)):
            if not np.all((arr >= 0.0) & (arr <= WORLD_LENGTH)):
                raise ValueError(f"{name} must lie in [0, {WORLD_LENGTH:g}]")
        self._x, self._prey, self._t = agent_x, prey_x[:, None], 0
        self._offset = self._x - self._prey
        return Reset(state=self._state(), positions=self._positions())

    def step(self, actions: np.ndarray) -> StepResult:
        """Move every predator by ±1 (clipped to ``[0, 30]``) and pay the scheme's per-step rewards.

        Approach is judged on the state before the move (decision 1).
        """
        if self._x is None or self._prey is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError(f"episode ended at step {self.horizon}; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        move = self._move.take(actions)  # [B, N] ±1.0
        rewards = self._rewards(self._offset * move <= 0.0)  # see _approach
        x = self._x + move  # a fresh array: arrays handed out earlier stay unchanged
        np.minimum(np.maximum(x, 0.0, out=x), WORLD_LENGTH, out=x)
        self._x, self._offset = x, x - self._prey
        self._t += 1
        ended = np.ones if self._t >= self.horizon else np.zeros
        return StepResult(
            state=self._state(),
            rewards=rewards,
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=ended(self.batch_size, dtype=bool),
            positions=self._positions(),
        )

    def approaches(self, actions: np.ndarray) -> np.ndarray:
        """``[B, N]`` bool: whether each agent's action approaches the prey in the current state."""
        return self._approach(check_actions(actions, self.batch_size, self.n_agents, self.n_actions))

    def _approach(self, actions: np.ndarray) -> np.ndarray:
        """The move points at the prey, or the agent is on it: (x − prey)·move ≤ 0, exact in floats."""
        self._require_x()
        return self._offset * self._move.take(actions) <= 0.0

    def cooperative_action(self) -> np.ndarray:
        """``[B, N]`` int64: the approach action per agent now (1 = +1 when left of or on the prey)."""
        self._require_x()
        return (self._offset <= 0.0).astype(np.int64)

    def _rewards(self, approach: np.ndarray) -> np.ndarray:
        """``[B, N]`` float32 per-step rewards from the approach mask ``[B, N]`` bool (a table look-up)."""
        index = (approach.astype(np.float64) @ self._index_weights).astype(np.int64)  # exact small ints
        index += self._agent_index
        return self._reward_table.take(index)

    def _build_reward_table(self) -> np.ndarray:
        """Flat ``[(N + 1)·2·N]`` float32: agent i's reward when ``k`` approach and i does (1) or not (0).

        Entries that cannot occur (k = 0 with i approaching, k = N with i not) hold the scheme's
        payoffs too; they are never looked up.
        """
        n = self.n_agents
        k = np.arange(n + 1)[:, None, None]
        approached = np.arange(2)[None, :, None].astype(bool)
        mixed = np.where(approached, self._mixed_approach, self._mixed_other)
        table = np.where(k == n, self._all, np.where(k == 0, self._none, mixed))
        table = np.broadcast_to(table, (n + 1, 2, n))
        if self.approach_weights is not None:  # an approacher's own reward scaled by its weight
            table = np.where(approached, table * self.approach_weights, table)
        return np.ascontiguousarray(table, dtype=np.float32).ravel()

    # ------------------------------------------------------------------ returns (decision 1, 14)
    def per_step_collective_reward(self, k: int, best: bool = True) -> float:
        """Sum over agents of one step's rewards when exactly ``k`` of the ``N`` agents approach.

        With approach weights the sum depends on who approaches: ``best`` picks the ``k`` approachers
        that maximise it, ``best=False`` those that minimise it (without weights both are the same).
        """
        if not 0 <= k <= self.n_agents:
            raise ValueError(f"k must lie in [0, {self.n_agents}], got {k}")
        w = self.approach_weights
        if k == self.n_agents:
            return self.n_agents * self._all if w is None else self._all * float(w.sum())
        if k == 0:
            return self.n_agents * self._none
        others = (self.n_agents - k) * self._mixed_other
        if w is None:
            return k * self._mixed_approach + others
        ascending = np.sort(w)
        extremes = [
            self._mixed_approach * float(ascending[:k].sum()),
            self._mixed_approach * float(ascending[-k:].sum()),
        ]
        return (max if best else min)(extremes) + others

    def optimal_collective_return(self) -> float:
        """``horizon × max_k`` per-step collective reward.

        Every ``k`` is reachable at every step (each agent picks its direction freely), except in the
        measure-zero event that an agent sits exactly on the prey, where it approaches either way.
        """
        return self.horizon * max(self.per_step_collective_reward(k) for k in range(self.n_agents + 1))

    def worst_collective_return(self) -> float:
        """``horizon × min_k`` per-step collective reward."""
        return self.horizon * min(
            self.per_step_collective_reward(k, best=False) for k in range(self.n_agents + 1)
        )

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """The all-defect episode total (decision 14): ``horizon × N × none-approach reward``."""
        return self.horizon * self.per_step_collective_reward(0), "all_defect"

    # ------------------------------------------------------------------ views of the current state
    @property
    def t(self) -> int:
        """Steps taken in the current episodes."""
        return self._t

    @property
    def raw_positions(self) -> np.ndarray:
        """``[B, N]`` float64 copy of the predators' unscaled positions in ``[0, 30]``."""
        return self._require_x().copy()

    @property
    def prey_position(self) -> np.ndarray:
        """``[B]`` float64 copy of the prey's unscaled position in ``[0, 30]``."""
        self._require_x()
        return self._prey[:, 0].copy()

    def _state(self) -> np.ndarray:
        return (self._offset / WORLD_LENGTH).astype(np.float32)

    def _positions(self) -> np.ndarray:
        return (self._x / WORLD_LENGTH).astype(np.float32)[:, :, None]

    def _require_x(self) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("the environment has no state yet; call reset(rng) first")
        return self._x
