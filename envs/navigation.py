"""Cooperative Navigation (AS/SS Sec. 5.1, decision 4 of ``papers/README.md``) on a 5×5 grid, batched.

``N`` agents (3 in the papers) each have their own landmark. Actions are left, down, right, up, stay
(indices 0–4, as in the reference grid world ``asokraju/Adv-MARL``), clipped at the walls. Per step,
agent ``i`` receives ``−w_i · d_i / 8 − c_i`` where ``d_i`` is its Manhattan distance to its landmark
and ``c_i`` is 1 if it shares its cell with at least one other agent (swaps are not collisions).
Episodes last ``horizon`` = 100 steps with no early end. Agents talk along the line graph 1–2–3
(``default_topology = "line"``).

Choices (where the papers are silent), all in this module:
    * Rewards are judged on the positions **after** the step (the reference judges the positions
      before it; after the move, the reward answers the action just taken). One collision penalty per
      agent per step, however many others share its cell.
    * ``reset`` draws, for each episode in batch order, ``2·G²`` uniforms from the given generator: the
      argsort of the first ``G²`` gives ``N`` distinct start cells, that of the next ``G²`` ``N``
      distinct landmark cells (starts and landmarks are drawn independently, so an agent may start on a
      landmark). Nothing is drawn in ``step``, so a batch equals ``B`` single-episode environments reset
      one after another from the same generator. With a fixed ``layout`` nothing is drawn at all.
    * Global state ``[B, 2·N·G²]`` float32: one-hot cells of agents 0..N−1, then of landmarks 0..N−1.
    * ``observations()`` ``[B, N, G² + 2N]`` float32, agent-centred: own one-hot cell, the offset
      ``(Δrow, Δcol) / (G − 1)`` to its landmark, then the offsets to agents ``i+1, …, i+N−1`` (mod N).
    * Positions ``[B, N, 2]`` float32 are ``(row, col) / (G − 1)``.
    * Private reward parameter (``draw_private_params``): each agent's distance weight ``w_i`` (how much
      the distance to its own landmark costs it), prior ``U(0.5, 1.5)`` i.i.d.; default 1 for all (the
      papers' rule). The optimum and the floor are computed for the weights given.
    * No per-action cooperative act: ``cooperative_action`` raises NotImplementedError (SS Sec. 5.2:
      IMR does not apply to C. Navigation).
    * ``n_agents`` is 2 or 3, where the optimum and the uniform-random floor are computed exactly.

Optimum (``optimal_collective_return``): backward induction over the joint cells (``25^N`` states).
The joint move is a product of individual moves, so ``max_a W(next(s, a))`` is computed as ``N``
successive 5-neighbour max-filters, one per agent axis, instead of a max over ``5^N`` joint actions.
Random layouts: the expectation over uniformly drawn landmarks and starts, evaluating one landmark
tuple per orbit of the square's 8 symmetries (and of agent relabelling when all weights are equal).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, check_actions

if TYPE_CHECKING:
    from confide.topologies.schedule import TopologyKind

GRID_SIZE = 5
"""Side ``G`` of the square grid."""
CELLS = GRID_SIZE * GRID_SIZE

LEFT, DOWN, RIGHT, UP, STAY = range(5)
"""Action indices."""

MOVE_DELTAS = np.array([[0, -1], [1, 0], [0, 1], [-1, 0], [0, 0]], dtype=np.int64)
"""``[5, 2]`` (Δrow, Δcol) of each action."""

DISTANCE_SCALE = 8.0
"""The distance term is ``w_i · d_i / 8`` (8 = the largest Manhattan distance on the 5×5 grid)."""
COLLISION_PENALTY = 1.0
WEIGHT_PRIOR = (0.5, 1.5)
"""Bounds of the uniform prior of ``draw_private_params``."""

_ROW, _COL = np.divmod(np.arange(CELLS), GRID_SIZE)
_NEXT = np.clip(_ROW[:, None] + MOVE_DELTAS[:, 0], 0, GRID_SIZE - 1) * GRID_SIZE + np.clip(
    _COL[:, None] + MOVE_DELTAS[:, 1], 0, GRID_SIZE - 1
)  # [G², 5]: the cell reached from each cell by each action
_DIST = np.abs(_ROW[:, None] - _ROW) + np.abs(_COL[:, None] - _COL)  # [G², G²] Manhattan


def draw_private_params(rng: np.random.Generator, n_agents: int = 3) -> np.ndarray:
    """Draw each agent's private distance weight ``w_i ~ U(0.5, 1.5)`` i.i.d.: ``[N]`` float64."""
    return rng.uniform(*WEIGHT_PRIOR, size=n_agents)


@dataclass(frozen=True)
class NavigationLayout:
    """A fixed layout: ``starts[i]`` and ``landmarks[i]`` are agent i's (row, col) cells."""

    starts: tuple[tuple[int, int], ...]
    landmarks: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        for name in ("starts", "landmarks"):
            cells = tuple(tuple(int(x) for x in rc) for rc in getattr(self, name))
            if any(len(rc) != 2 or not all(0 <= x < GRID_SIZE for x in rc) for rc in cells):
                raise ValueError(f"{name} must be (row, col) pairs in [0, {GRID_SIZE}), got {cells}")
            object.__setattr__(self, name, cells)
        if len(self.starts) != len(self.landmarks):
            raise ValueError(f"{len(self.starts)} starts but {len(self.landmarks)} landmarks")

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """``([N], [N])`` int64 flat cell indices of starts and landmarks."""
        starts, landmarks = np.array(self.starts), np.array(self.landmarks)
        return starts @ (GRID_SIZE, 1), landmarks @ (GRID_SIZE, 1)


class CooperativeNavigation:
    """A batch of ``batch_size`` C. Navigation episodes (implements ``confide.envs.base.VecEnv``).

    Args:
        n_agents: ``N``, 2 or 3 (the papers use 3).
        batch_size: episodes ``B`` stepped at once (≥ 1).
        distance_weights: ``[N]`` private weights ``w_i`` (default 1 each; see ``draw_private_params``).
        horizon: steps per episode (≥ 1; the papers use 100).
        layout: a fixed ``NavigationLayout`` used by every episode (default: random per episode).

    Shapes: state ``[B, 2·N·25]`` float32, rewards ``[B, N]`` float32, terminated/truncated ``[B]``
    bool, positions ``[B, N, 2]`` float32, actions ``[B, N]`` integer in ``[0, 5)``.
    """

    n_actions: int = 5
    state_bounds: tuple[float, float] = (0.0, 1.0)
    default_topology: TopologyKind = "line"

    def __init__(
        self,
        n_agents: int = 3,
        batch_size: int = 1,
        *,
        distance_weights: np.ndarray | list[float] | None = None,
        horizon: int = 100,
        layout: NavigationLayout | None = None,
    ):
        if n_agents not in (2, 3):
            raise ValueError(f"C. Navigation supports n_agents 2 or 3 (exact optimum), got {n_agents}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if layout is not None and len(layout.starts) != n_agents:
            raise ValueError(f"layout has {len(layout.starts)} agents, expected {n_agents}")
        self.n_agents = int(n_agents)
        self.batch_size = int(batch_size)
        self.horizon = int(horizon)
        self.layout = layout
        self.state_dim = 2 * self.n_agents * CELLS
        self.obs_dim = CELLS + 2 * self.n_agents
        weights = np.ones(self.n_agents) if distance_weights is None else distance_weights
        weights = np.array(weights, dtype=np.float64)
        if weights.shape != (self.n_agents,) or not np.all(np.isfinite(weights)):
            raise ValueError(f"distance_weights must be {self.n_agents} finite numbers, got {weights!r}")
        self.distance_weights = weights
        self._eye = np.eye(CELLS, dtype=np.float32)
        self._others = ~np.eye(self.n_agents, dtype=bool)
        self._cyclic = (np.arange(self.n_agents)[:, None] + np.arange(self.n_agents)) % self.n_agents
        self._cells: np.ndarray | None = None  # [B, N] int64 agent cells
        self._landmarks: np.ndarray | None = None  # [B, N] int64 landmark cells
        self._t = 0

    # ------------------------------------------------------------------ episode dynamics
    def reset(self, rng: np.random.Generator) -> Reset:
        """Draw distinct starts and distinct landmarks per episode (nothing with a fixed layout)."""
        if self.layout is not None:
            starts, landmarks = self.layout.cells()
            shape = (self.batch_size, self.n_agents)
            return self.reset_to(np.broadcast_to(starts, shape), np.broadcast_to(landmarks, shape))
        draws = rng.random((self.batch_size, 2 * CELLS))
        starts = np.argsort(draws[:, :CELLS], axis=1)[:, : self.n_agents]
        landmarks = np.argsort(draws[:, CELLS:], axis=1)[:, : self.n_agents]
        return self.reset_to(starts, landmarks)

    def reset_to(self, starts: np.ndarray, landmarks: np.ndarray) -> Reset:
        """Start episodes from flat cells ``row·5 + col``: ``starts`` and ``landmarks`` ``[B, N]`` int."""
        expected = (self.batch_size, self.n_agents)
        starts, landmarks = np.array(starts, dtype=np.int64), np.array(landmarks, dtype=np.int64)
        for name, arr in (("starts", starts), ("landmarks", landmarks)):
            if arr.shape != expected:
                raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
            if np.any((arr < 0) | (arr >= CELLS)):
                raise ValueError(f"{name} must be flat cells in [0, {CELLS})")
        self._cells, self._landmarks, self._t = starts, landmarks, 0
        return Reset(state=self._state(), positions=self._positions())

    def step(self, actions: np.ndarray) -> StepResult:
        """Move every agent (clipped at walls), then pay distance and collision costs on the new cells."""
        if self._cells is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError(f"episode ended at step {self.horizon}; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        self._cells = _NEXT[self._cells, actions]
        shared = ((self._cells[:, :, None] == self._cells[:, None, :]) & self._others).any(axis=-1)
        distance = _DIST[self._cells, self._landmarks]
        rewards = -self.distance_weights * distance / DISTANCE_SCALE - COLLISION_PENALTY * shared
        self._t += 1
        return StepResult(
            state=self._state(),
            rewards=rewards.astype(np.float32),
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=np.full(self.batch_size, self._t >= self.horizon, dtype=bool),
            positions=self._positions(),
        )

    def cooperative_action(self) -> np.ndarray:
        """C. Navigation has no per-action cooperative act (SS Sec. 5.2: IMR does not apply)."""
        raise NotImplementedError(
            "C. Navigation defines no per-agent cooperative action (IMR does not apply)"
        )

    # ------------------------------------------------------------------ returns (decision 4, 14)
    def optimal_collective_return(self) -> float:
        """The best expected collective return: exact for the fixed layout, else over random layouts.

        Computed once per (weights, horizon, N, layout) and cached (a few seconds for random layouts).
        """
        weights = tuple(float(w) for w in self.distance_weights)
        if self.layout is not None:
            starts, landmarks = self.layout.cells()
            return self.optimal_return_for_layout(starts, landmarks)
        return _expected_optimum(weights, self.horizon, self.n_agents)

    def optimal_return_for_layout(self, starts: np.ndarray, landmarks: np.ndarray) -> float:
        """Best collective return of one episode from flat ``starts`` ``[N]`` to ``landmarks`` ``[N]``."""
        values = _optimal_values(np.array(landmarks)[None], self.distance_weights, self.horizon)[0]
        return float(values[tuple(np.array(starts))])

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """The uniform-random joint policy's exact expected collective return (see ``_uniform_return``)."""
        weights = tuple(float(w) for w in self.distance_weights)
        layout = None if self.layout is None else tuple(tuple(int(x) for x in c) for c in self.layout.cells())
        return _uniform_return(weights, self.horizon, self.n_agents, layout), "uniform_random"

    # ------------------------------------------------------------------ views of the current state
    @property
    def t(self) -> int:
        """Steps taken in the current episodes."""
        return self._t

    @property
    def agent_cells(self) -> np.ndarray:
        """``[B, N]`` int64 copy of the agents' flat cells ``row·5 + col``."""
        return self._require_cells().copy()

    @property
    def landmark_cells(self) -> np.ndarray:
        """``[B, N]`` int64 copy of the landmarks' flat cells."""
        self._require_cells()
        return self._landmarks.copy()

    def observations(self) -> np.ndarray:
        """``[B, N, 25 + 2N]`` float32 agent-centred observations (layout in the module docstring)."""
        cells = self._require_cells()
        rc = np.stack([_ROW[cells], _COL[cells]], axis=-1)  # [B, N, 2]
        landmark = np.stack([_ROW[self._landmarks], _COL[self._landmarks]], axis=-1)
        scale = 1.0 / (GRID_SIZE - 1)
        to_landmark = (landmark - rc) * scale  # [B, N, 2]
        others = (rc[:, self._cyclic[:, 1:]] - rc[:, :, None, :]) * scale  # [B, N, N−1, 2]
        parts = [self._eye[cells], to_landmark, others.reshape(self.batch_size, self.n_agents, -1)]
        return np.concatenate([p.astype(np.float32) for p in parts], axis=-1)

    def _state(self) -> np.ndarray:
        b = self.batch_size
        return np.concatenate(
            [self._eye[self._cells].reshape(b, -1), self._eye[self._landmarks].reshape(b, -1)], 1
        )

    def _positions(self) -> np.ndarray:
        return (np.stack([_ROW[self._cells], _COL[self._cells]], axis=-1) / (GRID_SIZE - 1)).astype(
            np.float32
        )

    def _require_cells(self) -> np.ndarray:
        if self._cells is None:
            raise RuntimeError("the environment has no state yet; call reset(rng) first")
        return self._cells


# ---------------------------------------------------------------------- exact optimum (backward induction)
def _step_rewards(landmarks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``[L, 25, …, 25]`` collective reward of arriving at each joint cell, for ``L`` landmark tuples."""
    n_tuples, n = landmarks.shape
    total = np.zeros((n_tuples,) + (CELLS,) * n)
    for i in range(n):  # agent axes: a loop over N ≤ 3 axes, not over states
        shape = [n_tuples] + [1] * n
        shape[1 + i] = CELLS
        total -= (weights[i] / DISTANCE_SCALE) * _DIST[:, landmarks[:, i]].T.reshape(shape)
    grids = np.meshgrid(*([np.arange(CELLS)] * n), indexing="ij")
    for i in range(n):
        shared = np.zeros((CELLS,) * n, dtype=bool)
        for j in range(n):
            if j != i:
                shared |= grids[i] == grids[j]
        total -= COLLISION_PENALTY * shared
    return total


def _optimal_values(landmarks: np.ndarray, weights: np.ndarray, horizon: int) -> np.ndarray:
    """``[L, 25, …, 25]`` best return over ``horizon`` steps from each joint start, per landmark tuple.

    ``V_0 = 0``; ``V_k(s) = max_a [R(s') + V_{k−1}(s')]``, ``s' = next(s, a)``. The joint successor set is
    the product of the agents' successor sets, so the max is a 5-neighbour max-filter along each agent
    axis in turn. The update is deterministic, so once ``V_k`` equals ``V_{k−1}`` bitwise (every optimal
    plan has settled on its landmarks, where rewards are 0) it stays there: the loop stops early.
    """
    reward = _step_rewards(landmarks, np.asarray(weights, dtype=np.float64))
    values = np.zeros_like(reward)
    for _ in range(horizon):
        best = reward + values
        for axis in range(1, landmarks.shape[1] + 1):
            best = _neighbour_max(best, axis)
        if np.array_equal(best, values):
            break
        values = best
    return values


def _symmetry_maps() -> np.ndarray:
    """``[8, G²]`` the square's 8 symmetries (flips of rows, of columns, and transposition) as cell maps."""
    maps = []
    for transpose, flip_rows, flip_cols in itertools.product((False, True), repeat=3):
        rows = GRID_SIZE - 1 - _ROW if flip_rows else _ROW
        cols = GRID_SIZE - 1 - _COL if flip_cols else _COL
        if transpose:
            rows, cols = cols, rows
        maps.append(rows * GRID_SIZE + cols)
    return np.array(maps)


_SYMMETRY_MAPS = _symmetry_maps()


def _neighbour_max(values: np.ndarray, axis: int) -> np.ndarray:
    """Max of ``values`` over the cell itself and its 4-neighbours along one cell axis (of length 25).

    Equals ``np.take(values, _NEXT, axis).max(axis + 1)`` (walls clip a move to staying put, which the
    cell itself covers), with in-place maxima of shifted slices instead of a 5× larger gather.
    """
    shape = values.shape
    grid = values.reshape(shape[:axis] + (GRID_SIZE, GRID_SIZE) + shape[axis + 1 :])
    out = grid.copy()

    def part(ax: int, sl: slice) -> tuple[slice, ...]:
        index = [slice(None)] * grid.ndim
        index[ax] = sl
        return tuple(index)

    for ax in (axis, axis + 1):  # rows, then columns
        tail, head = part(ax, slice(1, None)), part(ax, slice(None, -1))
        np.maximum(out[tail], grid[head], out=out[tail])  # from the neighbour before
        np.maximum(out[head], grid[tail], out=out[head])  # from the neighbour after
    return out.reshape(shape)


@functools.lru_cache(maxsize=16)
def _expected_optimum(weights: tuple[float, ...], horizon: int, n_agents: int) -> float:
    """Exact mean of the optimum over distinct random landmarks and distinct random starts.

    Landmark tuples are grouped into orbits of the square's symmetries (and agent relabelling when all
    weights are equal): the start distribution is invariant, so every tuple of an orbit has the same mean.
    """
    tuples = np.array(list(itertools.permutations(range(CELLS), n_agents)))  # [L, N] ordered, distinct
    images = _SYMMETRY_MAPS[:, tuples]  # [8, L, N]
    if len(set(weights)) == 1:
        images = np.sort(images, axis=-1)
    codes = (images * CELLS ** np.arange(n_agents)).sum(axis=-1).min(axis=0)  # [L] orbit key
    _, first, counts = np.unique(codes, return_index=True, return_counts=True)
    grids = np.meshgrid(*([np.arange(CELLS)] * n_agents), indexing="ij")
    distinct = np.ones((CELLS,) * n_agents, dtype=bool)
    for i, j in itertools.combinations(range(n_agents), 2):
        distinct &= grids[i] != grids[j]
    total, chunk = 0.0, 64
    for lo in range(0, len(first), chunk):
        values = _optimal_values(tuples[first[lo : lo + chunk]], np.array(weights), horizon)
        total += float((values[:, distinct].mean(axis=1) * counts[lo : lo + chunk]).sum())
    return total / len(tuples)


# ---------------------------------------------------------------------- exact uniform-random floor
@functools.lru_cache(maxsize=16)
def _uniform_return(
    weights: tuple[float, ...], horizon: int, n_agents: int, layout: tuple[tuple[int, ...], ...] | None
) -> float:
    """Exact expected collective return when every agent picks each of the 5 actions with prob. 1/5.

    The agents then walk independently: from start ``x`` the law of the cell after ``t`` steps is row
    ``x`` of ``M^t`` (``M`` the one-agent walk matrix). Distance term: ``Σ_t Σ_c M^t[x_i, c] w_i d(c, l_i) / 8``.
    Collision term: agent i collides when at least one other shares its cell; by inclusion–exclusion
    over the others (N ≤ 3) its expected count is ``Σ_{j≠i} A[x_i, x_j] − [N = 3] T[x_0, x_1, x_2]``
    with ``A[x, y] = Σ_t Σ_c M^t[x, c] M^t[y, c]`` and ``T`` the three-way analogue. Random layouts
    average these over ordered distinct starts and (distinct, so marginally uniform) landmarks.
    """
    walk = np.zeros((CELLS, CELLS))
    np.add.at(walk, (np.repeat(np.arange(CELLS), 5), _NEXT.ravel()), 0.2)
    laws = np.empty((horizon, CELLS, CELLS))
    law = np.eye(CELLS)
    for t in range(horizon):
        law = law @ walk
        laws[t] = law
    visits = laws.sum(axis=0)  # [start, cell]: expected visits over the episode
    w = np.array(weights) / DISTANCE_SCALE  # [N]
    pair = np.einsum("txc,tyc->xy", laws, laws)
    triple = np.einsum("txc,tyc,tzc->xyz", laws, laws, laws) if n_agents == 3 else None
    if layout is None:
        distance = w.sum() * float(visits.mean(axis=0) @ _DIST.mean(axis=1))
        collisions = n_agents * (n_agents - 1) * pair[~np.eye(CELLS, dtype=bool)].mean()
        if triple is not None:
            x, y, z = np.meshgrid(*([np.arange(CELLS)] * 3), indexing="ij")
            collisions -= 3 * triple[(x != y) & (y != z) & (x != z)].mean()
    else:
        starts, landmarks = (np.array(c) for c in layout)
        distance = float(sum(w[i] * visits[starts[i]] @ _DIST[:, landmarks[i]] for i in range(n_agents)))
        collisions = sum(
            pair[starts[i], starts[j]] for i in range(n_agents) for j in range(n_agents) if i != j
        )
        if triple is not None:
            collisions -= 3 * triple[tuple(starts)]
    return float(-distance - COLLISION_PENALTY * collisions)
