"""Exchange (AS Sec. 5.1, decision 2 of ``papers/README.md``): a batched box-opening dilemma on a grid.

``N`` agents (3 in the paper) and ``N`` boxes live on a 5×5 grid; box ``j`` holds food for agent ``j``.
Each step every agent moves (left, down, right, up), stays, or tries to *open*. A box opens only for an
agent that is not its recipient, standing on it or 4-adjacent to it, choosing open; the opener pays
``OPEN_COST`` = 5 and the recipient gains its food value (10 by default) at once; each box opens at
most once per episode. Every agent pays ``STEP_COST`` = 0.01 per step. Episodes last ``horizon`` = 300
steps with no early end (``terminated`` is always False, ``truncated`` becomes True at the horizon).
Known totals (tests): cooperative optimum 3·(10 − 5) − 3·300·0.01 = 6, nobody opens −9. Uniformly
random play scores ≈ 5.98 as well (it opens every box, all three by step ~56 in half the episodes): a
total near −9 needs a learned refusal to open, below ~1/300 per step (``docs/decisions.md`` 16).

Choices (where the paper is silent), all in this module:
    * Action indices: 0 left (column − 1), 1 down (row + 1), 2 right (column + 1), 3 up (row − 1),
      4 stay, 5 open. Moves are clipped at the walls; agents may share cells with each other and with
      boxes (there are no collisions in Exchange). An opening agent does not move that step.
    * An open action targets one box: the lowest-index box the agent may open now (judged on the
      positions before the step). If no box is eligible, open does nothing and costs nothing.
    * Contested boxes (decision 2): if several agents target the same box in one step, the one with the
      highest priority ``priority[b, box, agent]`` opens it and pays; the others pay nothing and open
      nothing. The priorities are i.i.d. uniform, drawn from the reset generator and hidden from the
      agents. A box is contested at most once (the first contest opens it), so this is distributed
      exactly like a uniform pick among the contenders at the time.
    * ``reset`` draws, for each episode in batch order, ``G² + N²`` uniforms from the given generator:
      the argsort of the first ``G²`` places the ``N`` agents and then the ``N`` boxes on distinct cells
      (boxes and agents do not overlap at reset), the remaining ``N²`` are the priorities. Nothing is
      drawn in ``step``. A batch of ``B`` episodes therefore equals ``B`` single-episode environments
      reset one after another from the same generator, step for step.
    * Global state ``[B, S]`` float32, ``S = 2·N·G² + N`` (153 for the paper's setting): one-hot cells
      of agents 0..N−1, one-hot cells of boxes 0..N−1, then the opened flags.
    * ``observations()`` ``[B, N, O]`` float32, agent-centred (``O = G² + 2(N−1) + 3N``, 38 for N = 3):
      own one-hot cell; the offsets ``(Δrow, Δcol) / (G − 1)`` of agents ``i+1, …, i+N−1`` (mod N) and
      of boxes ``i, i+1, …`` (own box first); the opened flags of boxes ``i, i+1, …``.
    * Positions ``[B, N, 2]`` float32 are ``(row, col) / (G − 1)`` in ``[0, 1]``; the default topology
      is the complete graph (``default_topology = "complete"``; AS's dashed neighbourhoods are not
      specified precisely enough to reproduce).
    * Cooperative act (IMR, ``cooperative_action``): *open* when the agent can open a box for another
      agent now; otherwise the first move towards the nearest unopened box of another agent (lowest box
      index on ties; rows first, then columns); *stay* once every such box is open.
    * Private reward parameter (``draw_private_params``): each agent's food value ``v_i`` (what agent
      ``i`` gains when its box opens), prior ``U(5, 15)``; default 10 for all (the paper's rule). Only
      agent ``i``'s reward uses ``v_i``. The optimum becomes ``Σ_j max(v_j − 5, 0) − 0.01·N·T``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, check_actions

if TYPE_CHECKING:
    from confide.topologies.schedule import TopologyKind

GRID_SIZE = 5
"""Side ``G`` of the square grid."""

LEFT, DOWN, RIGHT, UP, STAY, OPEN = range(6)
"""Action indices."""

MOVE_DELTAS = np.array([[0, -1], [1, 0], [0, 1], [-1, 0], [0, 0], [0, 0]], dtype=np.int64)
"""``[6, 2]`` (Δrow, Δcol) of each action; stay and open do not move."""

STEP_COST = 0.01
"""What every agent pays per step."""
OPEN_COST = 5.0
"""What the opener pays."""
FOOD_VALUE = 10.0
"""What the recipient gains when its box opens (the paper's value; the default of every ``v_i``)."""
FOOD_PRIOR = (5.0, 15.0)
"""Bounds of the uniform prior of ``draw_private_params``."""


def draw_private_params(rng: np.random.Generator, n_agents: int = 3) -> np.ndarray:
    """Draw each agent's private food value ``v_i ~ U(5, 15)`` i.i.d.: ``[N]`` float64.

    Every draw exceeds ``OPEN_COST``, so opening every box stays collectively optimal.
    """
    return rng.uniform(*FOOD_PRIOR, size=n_agents)


class Exchange:
    """A batch of ``batch_size`` Exchange episodes (implements ``confide.envs.base.VecEnv``).

    Args:
        n_agents: agents and boxes ``N`` (≥ 2, ``2N ≤ 25``; the paper uses 3).
        batch_size: episodes ``B`` stepped at once (≥ 1).
        food_values: ``[N]`` private food values ``v_i`` (default 10 each; see ``draw_private_params``).
        horizon: steps per episode (≥ 1; the paper uses 300).

    Shapes: state ``[B, 2·N·25 + N]`` float32, rewards ``[B, N]`` float32, terminated/truncated ``[B]``
    bool, positions ``[B, N, 2]`` float32, actions ``[B, N]`` integer in ``[0, 6)``.
    """

    n_actions: int = 6
    state_bounds: tuple[float, float] = (0.0, 1.0)
    default_topology: TopologyKind = "complete"

    def __init__(
        self,
        n_agents: int = 3,
        batch_size: int = 1,
        *,
        food_values: np.ndarray | list[float] | None = None,
        horizon: int = 300,
    ):
        cells = GRID_SIZE * GRID_SIZE
        if not 2 <= n_agents <= cells // 2:
            raise ValueError(f"exchange needs 2 <= n_agents <= {cells // 2}, got {n_agents}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.n_agents = int(n_agents)
        self.batch_size = int(batch_size)
        self.horizon = int(horizon)
        self.state_dim = 2 * self.n_agents * cells + self.n_agents
        self.obs_dim = cells + 2 * (self.n_agents - 1) + 3 * self.n_agents
        if food_values is None:
            food_values = np.full(self.n_agents, FOOD_VALUE)
        food = np.array(food_values, dtype=np.float64)
        if food.shape != (self.n_agents,) or not np.all(np.isfinite(food)):
            raise ValueError(f"food_values must be {self.n_agents} finite numbers, got {food_values!r}")
        self.food_values = food
        self._eye = np.eye(cells, dtype=np.float32)
        self._not_self = ~np.eye(self.n_agents, dtype=bool)  # [N(agent), N(box)]: box j is not agent i's
        self._cyclic = (np.arange(self.n_agents)[:, None] + np.arange(self.n_agents)) % self.n_agents
        self._agents: np.ndarray | None = None  # [B, N, 2] int64 (row, col)
        self._boxes: np.ndarray | None = None  # [B, N, 2] int64 (row, col)
        self._opened: np.ndarray | None = None  # [B, N] bool
        self._priority: np.ndarray | None = None  # [B, N(box), N(agent)] float64
        self._t = 0

    # ------------------------------------------------------------------ episode dynamics
    def reset(self, rng: np.random.Generator) -> Reset:
        """Place agents and boxes on distinct random cells and draw the contest priorities (see module)."""
        cells, n = GRID_SIZE * GRID_SIZE, self.n_agents
        draws = rng.random((self.batch_size, cells + n * n))
        placed = np.argsort(draws[:, :cells], axis=1)[:, : 2 * n]
        rc = np.stack(np.divmod(placed, GRID_SIZE), axis=-1)  # [B, 2N, 2]
        return self.reset_to(rc[:, :n], rc[:, n:], priority=draws[:, cells:].reshape(-1, n, n))

    def reset_to(
        self,
        agents: np.ndarray,
        boxes: np.ndarray,
        opened: np.ndarray | None = None,
        priority: np.ndarray | None = None,
    ) -> Reset:
        """Start episodes from a given layout (for tests and diagnostics).

        Args:
            agents: ``[B, N, 2]`` integer (row, col) cells of the agents.
            boxes: ``[B, N, 2]`` integer (row, col) cells of the boxes (box j feeds agent j).
            opened: ``[B, N]`` bool opened flags (default all closed).
            priority: ``[B, N(box), N(agent)]`` contest priorities (default: lower agent index wins).
        """
        b, n = self.batch_size, self.n_agents
        agents, boxes = np.array(agents, dtype=np.int64), np.array(boxes, dtype=np.int64)
        for name, arr in (("agents", agents), ("boxes", boxes)):
            if arr.shape != (b, n, 2):
                raise ValueError(f"{name} must have shape {(b, n, 2)}, got {arr.shape}")
            if np.any((arr < 0) | (arr >= GRID_SIZE)):
                raise ValueError(f"{name} cells must lie in [0, {GRID_SIZE}) on both axes")
        opened = np.zeros((b, n), dtype=bool) if opened is None else np.array(opened, dtype=bool)
        if opened.shape != (b, n):
            raise ValueError(f"opened must have shape {(b, n)}, got {opened.shape}")
        if priority is None:
            priority = np.broadcast_to(-np.arange(n, dtype=np.float64), (b, n, n))
        priority = np.array(priority, dtype=np.float64)
        if priority.shape != (b, n, n):
            raise ValueError(f"priority must have shape {(b, n, n)}, got {priority.shape}")
        self._agents, self._boxes, self._opened, self._priority = agents, boxes, opened, priority
        self._t = 0
        return Reset(state=self._state(), positions=self._positions())

    def step(self, actions: np.ndarray) -> StepResult:
        """Resolve opens (on the positions before the step), pay rewards, then move the others."""
        if self._agents is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError(f"episode ended at step {self.horizon}; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        opened_now, winner = self._resolve_opens(actions)  # [B, N(box)] bool, [B, N(box)] int64
        agent_ids = np.arange(self.n_agents)
        won = ((winner[:, :, None] == agent_ids) & opened_now[:, :, None]).any(axis=1)  # [B, N(agent)]
        rewards = -STEP_COST - OPEN_COST * won + self.food_values * opened_now  # recipient of box j is j
        self._opened = self._opened | opened_now
        self._agents = np.clip(self._agents + MOVE_DELTAS[actions], 0, GRID_SIZE - 1)
        self._t += 1
        return StepResult(
            state=self._state(),
            rewards=rewards.astype(np.float32),
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=np.full(self.batch_size, self._t >= self.horizon, dtype=bool),
            positions=self._positions(),
        )

    def eligible(self) -> np.ndarray:
        """``[B, N(agent), N(box)]`` bool: agent i may open box j now (j ≠ i, closed, distance ≤ 1)."""
        return (self._distances() <= 1) & ~self._require_opened()[:, None, :] & self._not_self

    def _distances(self) -> np.ndarray:
        """``[B, N(agent), N(box)]`` int64 Manhattan distances."""
        self._require_opened()
        return np.abs(self._agents[:, :, None, :] - self._boxes[:, None, :, :]).sum(axis=-1)

    def _resolve_opens(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which boxes open this step ``[B, N(box)]`` and who opens each ``[B, N(box)]`` (see module)."""
        eligible = self.eligible()
        target = np.argmax(eligible, axis=-1)  # [B, N(agent)]: lowest eligible box index
        opener = (actions == OPEN) & eligible.any(axis=-1)
        contend = opener[:, :, None] & (target[:, :, None] == np.arange(self.n_agents))  # [B, agent, box]
        score = np.where(contend, self._priority.transpose(0, 2, 1), -np.inf)
        return contend.any(axis=1), np.argmax(score, axis=1)

    def cooperative_action(self) -> np.ndarray:
        """``[B, N]`` int64: open if able, else head for the nearest closed box of another agent, else stay."""
        eligible = self.eligible()
        targets = ~self._opened[:, None, :] & self._not_self  # [B, agent, box]
        dist = np.where(targets, self._distances(), np.iinfo(np.int64).max)
        nearest = np.argmin(dist, axis=-1)  # [B, N]
        goal = np.take_along_axis(self._boxes, nearest[:, :, None], axis=1)  # [B, N, 2]
        d_row, d_col = (goal - self._agents).transpose(2, 0, 1)
        move = np.select([d_row > 0, d_row < 0, d_col > 0, d_col < 0], [DOWN, UP, RIGHT, LEFT], STAY)
        coop = np.where(eligible.any(axis=-1), OPEN, np.where(targets.any(axis=-1), move, STAY))
        return coop.astype(np.int64)

    # ------------------------------------------------------------------ returns (decision 2, 14)
    def optimal_collective_return(self) -> float | None:
        """``Σ_j max(v_j − 5, 0) − 0.01·N·T`` (6 with the paper's values), or None if ``T < 2(G − 1)``.

        The step costs are paid whatever happens, and opening box ``j`` adds ``v_j − 5`` to the total.
        With ``N ≥ 2`` agent ``i`` can be assigned box ``i + 1 (mod N)``; it reaches a cell next to the
        box within ``2(G − 1) − 1`` moves and opens it on the next step, so every worthwhile box opens
        once ``T ≥ 2(G − 1)`` (8 on the 5×5 grid). Shorter horizons depend on the layout (None).
        """
        if self.horizon < 2 * (GRID_SIZE - 1):
            return None
        gains = np.maximum(self.food_values - OPEN_COST, 0.0).sum()
        return float(gains) - self.n_agents * self.horizon * STEP_COST

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """All defect (nobody opens): ``−0.01·N·T`` (−9 with the paper's values)."""
        return -(self.n_agents * self.horizon) * STEP_COST, "all_defect"

    # ------------------------------------------------------------------ views of the current state
    @property
    def t(self) -> int:
        """Steps taken in the current episodes."""
        return self._t

    @property
    def agent_cells(self) -> np.ndarray:
        """``[B, N, 2]`` int64 copy of the agents' (row, col)."""
        self._require_opened()
        return self._agents.copy()

    @property
    def box_cells(self) -> np.ndarray:
        """``[B, N, 2]`` int64 copy of the boxes' (row, col)."""
        self._require_opened()
        return self._boxes.copy()

    @property
    def opened(self) -> np.ndarray:
        """``[B, N]`` bool copy of the opened flags."""
        return self._require_opened().copy()

    def observations(self) -> np.ndarray:
        """``[B, N, O]`` float32 agent-centred observations (layout in the module docstring)."""
        opened = self._require_opened()
        scale = 1.0 / (GRID_SIZE - 1)
        own = self._eye[self._flat(self._agents)]  # [B, N, G²]
        me = self._agents[:, :, None, :]
        others = (self._agents[:, self._cyclic[:, 1:]] - me) * scale  # [B, N, N−1, 2]
        boxes = (self._boxes[:, self._cyclic] - me) * scale  # [B, N, N, 2]
        b, n = self.batch_size, self.n_agents
        parts = [own, others.reshape(b, n, -1), boxes.reshape(b, n, -1), opened[:, self._cyclic]]
        return np.concatenate([p.astype(np.float32) for p in parts], axis=-1)

    def _state(self) -> np.ndarray:
        agents = self._eye[self._flat(self._agents)].reshape(self.batch_size, -1)
        boxes = self._eye[self._flat(self._boxes)].reshape(self.batch_size, -1)
        return np.concatenate([agents, boxes, self._opened.astype(np.float32)], axis=1)

    def _positions(self) -> np.ndarray:
        return (self._agents / (GRID_SIZE - 1)).astype(np.float32)

    @staticmethod
    def _flat(rc: np.ndarray) -> np.ndarray:
        return rc[..., 0] * GRID_SIZE + rc[..., 1]

    def _require_opened(self) -> np.ndarray:
        if self._opened is None:
            raise RuntimeError("the environment has no state yet; call reset(rng) first")
        return self._opened
