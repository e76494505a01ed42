"""Batched grid-world machinery shared by Cleanup and Harvest (the canonical SSD mechanics).

What lives here is geometry and bookkeeping, identical in both games; what an apple is worth, how
waste spreads and how apples regrow live in ``cleanup.py`` and ``harvest.py``.

* ``GridMap``: a map parsed from strings (``@`` wall, `` `` floor, ``P`` spawn point, ``A`` apple cell
  holding an apple at reset, ``B`` apple cell empty at reset, ``H`` river cell holding waste at reset,
  ``R`` clean river cell, ``S`` stream). Maps must be enclosed by walls, so no move or beam leaves them.
  Cells are addressed by their flat row-major index ``row * width + col``.
* Orientations ``UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3`` (clockwise; UP is row − 1). Actions 0–6 are the
  SSD base actions, moves relative to facing: ``STEP_LEFT, STEP_RIGHT, FORWARD, BACKWARD, STAY,
  TURN_CW, TURN_CCW`` (SSD's MOVE_LEFT/RIGHT/UP/DOWN with "up" = forward); games append their own.
* ``resolve_moves``: simultaneous moves with conflicts settled by a random priority (choice below).
* ``cast_beams``: SSD beams of width 3 and length 5 stopped by walls and by absorbing cells.
* ``egocentric_views``: ``[B, N, V, V]`` uint8 cell codes centred on each agent, rotated so the agent
  faces the top row (SSD's ``rotate_view``); cells off the map read ``Code.OUTSIDE``.
* ``AppleGridEnv``: the episode shell both games share (agents, apples, the optional penalty beam,
  the global state and views); games override its hooks.

Everything is vectorised over the batch and the agents: the only Python loops are the fixed-point
iterations of ``resolve_moves`` (at most ``N + 1``, usually one) and the floor's Monte Carlo.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, check_actions

VIEW_SIZE = 15
"""Side of the egocentric view (SSD: 7 cells each way around the agent)."""

BEAM_LENGTH = 5
"""Cells each beam ray covers (SSD's fire and clean length)."""

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
DIRECTIONS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)
"""``[4, 2]`` (d_row, d_col) of each orientation, clockwise from UP."""

STEP_LEFT, STEP_RIGHT, FORWARD, BACKWARD, STAY, TURN_CW, TURN_CCW = range(7)
BASE_ACTIONS: tuple[str, ...] = (
    "step_left",
    "step_right",
    "forward",
    "backward",
    "stay",
    "turn_cw",
    "turn_ccw",
)
_MOVE_TURN = np.array([3, 1, 0, 2])
"""Quarter turns clockwise from the facing direction to each move's direction (left, right, fwd, back)."""


class Code(IntEnum):
    """Cell codes of the egocentric views; agent ``i`` is drawn as ``FIRST_AGENT + i`` (as SSD's colours)."""

    OUTSIDE = 0
    EMPTY = 1
    WALL = 2
    APPLE = 3
    WASTE = 4
    RIVER = 5
    STREAM = 6
    FIRST_AGENT = 7


_TERRAIN = {
    "@": Code.WALL,
    " ": Code.EMPTY,
    "P": Code.EMPTY,
    "A": Code.EMPTY,
    "B": Code.EMPTY,
    "H": Code.RIVER,
    "R": Code.RIVER,
    "S": Code.STREAM,
}


@dataclass(frozen=True, eq=False)
class GridMap:
    """A static map: terrain codes, walls, and the flat indices of its special cells.

    Attributes:
        rows: the map strings, one per row.
        height, width: its size.
        terrain: ``[H·W]`` uint8 ``Code`` of each cell without items or agents.
        walls: ``[H·W]`` bool.
        steps: ``[4]`` int64 flat offset of one step in each orientation.
    """

    rows: tuple[str, ...]
    height: int
    width: int
    terrain: np.ndarray
    walls: np.ndarray
    steps: np.ndarray

    @classmethod
    def parse(cls, rows: Sequence[str], allowed: str = "".join(_TERRAIN)) -> GridMap:
        """Parse and validate map strings (rectangular, known characters, enclosed by walls)."""
        rows = tuple(rows)
        if len(rows) < 3 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 3:
            raise ValueError("a map is at least 3 rows of equal length >= 3")
        unknown = sorted({ch for r in rows for ch in r} - set(allowed))
        if unknown:
            raise ValueError(f"unknown map characters {unknown}; this map allows {allowed!r}")
        border = rows[0] + rows[-1] + "".join(r[0] + r[-1] for r in rows)
        if set(border) != {"@"}:
            raise ValueError("maps must be enclosed by walls ('@' on every border cell)")
        h, w = len(rows), len(rows[0])
        terrain = np.array([_TERRAIN[ch] for r in rows for ch in r], dtype=np.uint8)
        steps = DIRECTIONS[:, 0] * w + DIRECTIONS[:, 1]
        return cls(rows, h, w, terrain, terrain == Code.WALL, steps)

    @property
    def n_cells(self) -> int:
        return self.height * self.width

    def cells(self, chars: str) -> np.ndarray:
        """Flat indices (row-major, int64) of the cells whose character is in ``chars``."""
        flat = np.array([ch in chars for r in self.rows for ch in r])
        return np.flatnonzero(flat).astype(np.int64)

    def slots(self, cells: np.ndarray) -> np.ndarray:
        """``[H·W]`` int64: position of each cell in ``cells``, −1 for cells not in it."""
        out = np.full(self.n_cells, -1, dtype=np.int64)
        out[cells] = np.arange(len(cells))
        return out

    def neighbourhood(self, cells: np.ndarray) -> np.ndarray:
        """``[n, k]`` int64: for each of ``cells``, the positions in ``cells`` of the others within its 3×3
        square, padded with ``n`` (index a trailing always-False column with it)."""
        rc = self.row_col(cells)
        near = np.abs(rc[:, None, :] - rc[None, :, :]).max(axis=2) == 1
        k = int(near.sum(axis=1).max(initial=0))
        table = np.full((len(cells), k), len(cells), dtype=np.int64)
        for row, others in enumerate(near):  # static, once per map
            found = np.flatnonzero(others)
            table[row, : len(found)] = found
        return table

    def row_col(self, cells: np.ndarray) -> np.ndarray:
        """``[..., 2]`` int64 (row, col) of flat cell indices."""
        return np.stack(np.divmod(cells, self.width), axis=-1)


def turn(orientation: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """New orientations ``[B, N]``: TURN_CW adds a quarter turn clockwise, TURN_CCW removes one."""
    delta = np.where(actions == TURN_CW, 1, np.where(actions == TURN_CCW, 3, 0))
    return (orientation + delta) % 4


def move_targets(grid: GridMap, pos: np.ndarray, orientation: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Cells ``[B, N]`` each agent asks to enter: one step relative to its facing, or its own cell.

    Moves into walls, and every action that is not a move, target the agent's own cell.
    """
    is_move = actions < STAY
    heading = (orientation + _MOVE_TURN[np.where(is_move, actions, 0)]) % 4
    target = pos + np.where(is_move, grid.steps[heading], 0)
    return np.where(grid.walls[target], pos, target)


def resolve_moves(pos: np.ndarray, target: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Simultaneous moves ``pos → target`` (flat cells ``[B, N]``) with conflicts; the new positions.

    Choice (SSD's outcome, stated as a fixed point): an agent whose target is its own cell stays and
    holds it. Repeat until nothing changes: a mover is blocked (stays put) when another agent targets
    the same cell and that agent stays or has a higher ``priority``, or when it and another mover
    try to swap cells. Chains into cells being vacated and rotations of three or more agents go
    through. A blocked agent then holds its own cell, which may block others in turn. ``priority`` is
    ``[B, N]`` float with distinct entries per episode, drawn from the env's generator each step, so
    a contested cell goes to a uniformly random contender. Afterwards no two agents share a cell, and
    every blocked mover either tried to swap or finds an agent on its target.
    """
    target = target.copy()
    moving = target != pos
    n = pos.shape[1]
    others = ~np.eye(n, dtype=bool)
    swap = (target[:, :, None] == pos[:, None, :]) & (target[:, None, :] == pos[:, :, None]) & others
    blocked = moving & swap.any(axis=2)
    for _ in range(n + 1):
        if blocked.any():
            moving &= ~blocked
            target = np.where(blocked, pos, target)
        beats = ~moving[:, None, :] | (priority[:, None, :] > priority[:, :, None])  # j beats i
        contest = (target[:, :, None] == target[:, None, :]) & beats & others
        blocked = moving & contest.any(axis=2)
        if not blocked.any():
            return target
    raise AssertionError("move resolution did not reach a fixed point")  # at most N blocks happen


def cast_beams(
    grid: GridMap,
    episode: np.ndarray,
    cell: np.ndarray,
    orientation: np.ndarray,
    absorbing: np.ndarray,
    length: int = BEAM_LENGTH,
) -> tuple[np.ndarray, np.ndarray]:
    """SSD beams fired by ``M`` agents: the cells of their three rays and which of them the beam covers.

    The centre ray covers the ``length`` cells ahead of the agent; the two side rays start on the cells
    beside it (its left and right) and cover that cell and ``length − 1`` ahead. A ray stops before a
    wall and stops after covering an absorbing cell (an agent; for the clean beam also a waste cell).

    Args:
        episode, cell, orientation: ``[M]`` int, each firing agent's episode, flat cell and facing.
        absorbing: ``[B, H·W]`` bool, the cells that stop a ray after it covers them.

    Returns:
        cells ``[M, 3, length]`` int64 (flat; clipped into the map past a wall) and covered
        ``[M, 3, length]`` bool. Rays are ordered (left, centre, right).
    """
    fwd = grid.steps[orientation]  # [M]
    side = grid.steps[(orientation + 1) % 4]  # one step to the agent's right
    start = cell[:, None] + np.stack([-side, fwd, side], axis=1)  # [M, 3]
    cells = start[:, :, None] + fwd[:, None, None] * np.arange(length)  # [M, 3, L]
    cells = np.clip(cells, 0, grid.n_cells - 1)
    open_ = ~grid.walls[cells]
    absorbs = absorbing.reshape(-1)[episode[:, None, None] * grid.n_cells + cells]
    passes = np.logical_and.accumulate(open_ & ~absorbs, axis=2)  # the ray goes beyond this cell
    reached = np.ones_like(open_)
    reached[:, :, 1:] = passes[:, :, :-1]
    return cells, open_ & reached


def egocentric_views(
    grid: GridMap, codes: np.ndarray, pos: np.ndarray, orientation: np.ndarray, view_size: int = VIEW_SIZE
) -> np.ndarray:
    """``[B, N, V, V]`` uint8 views of ``codes`` (``[B, H·W]``) around each agent, its facing at the top.

    ``view[b, i, 0, V // 2]`` is the cell ``V // 2`` steps ahead of agent ``i``; column ``V − 1`` is to its
    right. Cells off the map are ``Code.OUTSIDE`` (0).
    """
    r = view_size // 2
    batch = codes.shape[0]
    hp, wp = grid.height + 2 * r, grid.width + 2 * r
    padded = np.zeros((batch, hp, wp), dtype=np.uint8)
    padded[:, r : r + grid.height, r : r + grid.width] = codes.reshape(batch, grid.height, grid.width)
    offsets = _view_offsets(view_size, wp)  # [4, V, V]
    row, col = np.divmod(pos, grid.width)
    centre = (row + r) * wp + col + r + np.arange(batch)[:, None] * (hp * wp)  # [B, N]
    index = offsets[orientation]  # [B, N, V, V] int32; built in place, as temporaries cost page faults
    index += centre.astype(np.int32)[:, :, None, None]
    return np.take(padded.reshape(-1), index)


@functools.cache
def _view_offsets(view_size: int, padded_width: int) -> np.ndarray:
    """``[4, V, V]`` int32 flat offsets from the centre, rotated (as SSD's ``rotate_view``) per facing."""
    d = np.arange(view_size) - view_size // 2
    up = d[:, None] * padded_width + d[None, :]
    return np.stack([np.rot90(up, k=o) for o in range(4)]).astype(np.int32)


def draw_private_params(rng: np.random.Generator, n_agents: int) -> np.ndarray:
    """Each agent's private value of an apple, ``[N]`` float64 uniform in ``[0.5, 1.5]`` (choice).

    Pass it as ``apple_values`` to ``Cleanup`` or ``Harvest``; only the owner's reward uses its value.
    """
    return rng.uniform(0.5, 1.5, size=n_agents)


_FLOOR_CACHE: dict[tuple, tuple[float, float]] = {}
FLOOR_EPISODES = 500
FLOOR_SEED = 0


class AppleGridEnv:
    """The batched episode shell shared by Cleanup and Harvest (implements ``confide.envs.base.VecEnv``).

    One step, in SSD's order: turns; moves relative to facing, with conflicts settled by
    ``resolve_moves``; every agent on an apple eats it (+``apple_values[i]``, canonical 1); beams (the
    game's own, and the penalty beam when ``firing``) from the agents' cells after the moves, all cast
    on the same map, so beams fired in one step do not see each other's effects (choice: SSD applies
    them agent by agent); the game's spawns; ``t += 1``. ``terminated`` is never set; ``truncated`` is
    set at ``horizon``.

    Penalty beam (``firing=True``): the firer pays −1, every agent a ray covers −50 (once per firer);
    the ray stops at the first agent. With ``firing=False`` (default, Christoffersen et al.) the fire
    action is removed from the action set (choice): it is always the last action index when present,
    so every other index is the same with and without firing.

    Global state ``[B, S]`` float32 in {0, 1} (choice), concatenated in this order: one flag per apple
    cell (apple present); the game's item flags (Cleanup: waste per river cell); a one-hot of each
    agent's cell over the walkable cells (``N × n_walkable``, agent by agent, so identities are kept);
    a one-hot of each agent's orientation (``N × 4``). Positions ``[B, N, 2]`` float32 are
    ``(row, col) / (max(H, W) − 1)``, one scale for both axes so distances keep their shape.

    Randomness: ``reset(rng)`` draws the spawn points (distinct, uniform among the map's ``P`` cells)
    and orientations, then the env keeps ``rng`` and draws each step's move priorities ``[B, N]`` and
    the game's spawns from it, in that order. A batch-1 env reset from ``default_rng(s)`` therefore
    replays ``ParallelEpisode(...).reset(seed=s)`` step for step.
    """

    state_bounds: tuple[float, float] = (0.0, 1.0)
    view_size: int = VIEW_SIZE
    map_chars: str = "@ PAB"
    game_actions: tuple[str, ...] = ()

    def __init__(
        self,
        ascii_map: Sequence[str],
        n_agents: int,
        batch_size: int,
        *,
        horizon: int,
        firing: bool,
        apple_values: Sequence[float] | np.ndarray | None,
    ):
        self.grid = GridMap.parse(ascii_map, self.map_chars)
        self.spawn_cells = self.grid.cells("P")
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        values = np.ones(n_agents) if apple_values is None else np.array(apple_values, dtype=np.float64)
        if values.shape != (n_agents,) or not np.all(np.isfinite(values)):
            raise ValueError(f"apple_values must be {n_agents} finite numbers, got {apple_values!r}")
        self.n_agents, self.batch_size, self.horizon = int(n_agents), int(batch_size), int(horizon)
        self.firing = bool(firing)
        self.apple_values = values
        self.action_names = BASE_ACTIONS + self.game_actions + (("fire",) if self.firing else ())
        self.n_actions = len(self.action_names)
        self.fire_action = self.n_actions - 1 if self.firing else -1
        self.apple_cells = self.grid.cells("AB")
        self.apple_slot = self.grid.slots(self.apple_cells)
        self.walkable = np.flatnonzero(~self.grid.walls)
        self.walk_slot = self.grid.slots(self.walkable)
        self._setup()
        self.state_dim = (
            len(self.apple_cells) + self._n_item_flags() + self.n_agents * (len(self.walkable) + 4)
        )
        self.n_codes = int(Code.FIRST_AGENT) + self.n_agents
        self._episode = np.arange(self.batch_size)[:, None]  # [B, 1]
        self._ids = np.arange(self.n_agents)
        self._rng: np.random.Generator | None = None
        self._pos: np.ndarray | None = None  # [B, N] int64 flat cells
        self._orient = np.zeros((self.batch_size, self.n_agents), dtype=np.int64)
        self._apples = np.zeros((self.batch_size, len(self.apple_cells)), dtype=bool)
        self._t = 0

    # ------------------------------------------------------------------ hooks for the games
    def _setup(self) -> None:
        """Precompute the game's static tables from ``self.grid`` (called once by ``__init__``)."""

    def _n_item_flags(self) -> int:
        return 0

    def _reset_items(self, items: dict[str, np.ndarray | None]) -> None:
        """Set the game's own item arrays at reset (``None`` = the map's initial layout)."""

    def _item_flags(self) -> list[np.ndarray]:
        return []

    def _draw_items(self, codes: np.ndarray) -> None:
        """Write the game's items into the ``[B, H·W]`` code grid."""

    def _game_actions(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Apply the game's own actions (after moves and eating, before spawns)."""

    def _spawn(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ episode dynamics
    def reset(self, rng: np.random.Generator) -> Reset:
        """Fresh episodes: agents on distinct random spawn points, random facings, the map's items."""
        if self.n_agents > len(self.spawn_cells):
            raise ValueError(
                f"{self.n_agents} agents need as many spawn points; the map has {len(self.spawn_cells)}"
            )
        keys = rng.random((self.batch_size, len(self.spawn_cells)))
        pos = self.spawn_cells[np.argsort(keys, axis=1)[:, : self.n_agents]]
        orient = rng.integers(0, 4, size=(self.batch_size, self.n_agents))
        self._start(rng, pos, orient, None, {})
        return Reset(state=self._state(), positions=self._positions())

    def reset_to(
        self,
        rng: np.random.Generator,
        positions: np.ndarray,
        orientations: np.ndarray,
        apples: np.ndarray | None = None,
        **items: np.ndarray | None,
    ) -> Reset:
        """Start from a given layout (tests, diagnostics); later steps draw from ``rng``.

        Args:
            positions: ``[B, N, 2]`` int (row, col) of distinct walkable cells per episode.
            orientations: ``[B, N]`` int in ``0..3`` (UP, RIGHT, DOWN, LEFT).
            apples: ``[B, H, W]`` bool, apples only on apple cells; ``None`` = the map's initial apples.
            items: the game's own layers (Cleanup: ``waste``), same form.
        """
        b, n = self.batch_size, self.n_agents
        positions = np.asarray(positions, dtype=np.int64)
        orientations = np.asarray(orientations, dtype=np.int64)
        if positions.shape != (b, n, 2) or orientations.shape != (b, n):
            raise ValueError(f"positions must be [{b}, {n}, 2] and orientations [{b}, {n}]")
        if not np.all((orientations >= 0) & (orientations < 4)):
            raise ValueError("orientations must lie in 0..3")
        rows, cols = positions[..., 0], positions[..., 1]
        if not np.all((rows >= 0) & (rows < self.grid.height) & (cols >= 0) & (cols < self.grid.width)):
            raise ValueError("positions must lie on the map")
        pos = rows * self.grid.width + cols
        if self.grid.walls[pos].any() or (np.diff(np.sort(pos, axis=1), axis=1) == 0).any():
            raise ValueError("agents must stand on distinct non-wall cells")
        self._start(rng, pos, orientations, self._layer("apples", apples, self.apple_cells), items)
        return Reset(state=self._state(), positions=self._positions())

    def _layer(self, name: str, dense: np.ndarray | None, cells: np.ndarray) -> np.ndarray | None:
        """``[B, H, W]`` bool → ``[B, len(cells)]``, refusing flags outside ``cells``."""
        if dense is None:
            return None
        dense = np.asarray(dense, dtype=bool).reshape(self.batch_size, -1)
        if dense.shape[1] != self.grid.n_cells:
            raise ValueError(f"{name} must be [B, {self.grid.height}, {self.grid.width}] bool")
        outside = dense.copy()
        outside[:, cells] = False
        if outside.any():
            raise ValueError(f"{name} may only lie on their own cells")
        return dense[:, cells]

    def _start(self, rng, pos, orient, apples, items) -> None:
        self._rng, self._pos, self._orient, self._t = rng, pos, orient, 0
        initial = np.isin(self.apple_cells, self.grid.cells("A"))
        self._apples = np.repeat(initial[None], self.batch_size, 0) if apples is None else apples
        self._reset_items(items)

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply integer actions ``[B, N]`` (see ``action_names``); returns the batched ``StepResult``."""
        if self._pos is None or self._rng is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError(f"episode ended at step {self.horizon}; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        rng = self._rng
        rewards = np.zeros((self.batch_size, self.n_agents), dtype=np.float64)
        self._orient = turn(self._orient, actions)
        target = move_targets(self.grid, self._pos, self._orient, actions)
        self._pos = resolve_moves(self._pos, target, rng.random((self.batch_size, self.n_agents)))
        self._eat(rewards)
        if self.firing:
            self._penalty_beams(actions, rewards)
        self._game_actions(actions, rewards)
        self._spawn(rng)
        self._t += 1
        return StepResult(
            state=self._state(),
            rewards=rewards.astype(np.float32),
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=np.full(self.batch_size, self._t >= self.horizon, dtype=bool),
            positions=self._positions(),
        )

    def _eat(self, rewards: np.ndarray) -> None:
        """Every agent on an apple eats it: +``apple_values[i]`` to the eater only."""
        slot = self.apple_slot[self._pos]  # [B, N], −1 off apple cells
        eb, ei = np.nonzero(slot >= 0)
        eaten = self._apples[eb, slot[eb, ei]]
        eb, ei = eb[eaten], ei[eaten]
        self._apples[eb, slot[eb, ei]] = False
        rewards[eb, ei] += self.apple_values[ei]

    def _penalty_beams(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        b, i = np.nonzero(actions == self.fire_action)
        if len(b) == 0:
            return
        occupant = self._occupancy()
        cells, covered = cast_beams(self.grid, b, self._pos[b, i], self._orient[b, i], occupant >= 0)
        hit = occupant[b[:, None, None], cells]
        struck = covered & (hit >= 0)
        rewards[b, i] -= 1.0
        victims = np.broadcast_to(b[:, None, None], hit.shape)[struck] * self.n_agents + hit[struck]
        rewards -= 50.0 * np.bincount(victims, minlength=rewards.size).reshape(rewards.shape)

    def _occupancy(self) -> np.ndarray:
        """``[B, H·W]`` int64: the agent on each cell, −1 for none."""
        occupant = np.full((self.batch_size, self.grid.n_cells), -1, dtype=np.int64)
        occupant[self._episode, self._pos] = self._ids
        return occupant

    def _agents_on(self, slots: np.ndarray, n: int) -> np.ndarray:
        """``[B, n]`` bool: which of ``n`` cells (``slots`` maps cells to them, −1 elsewhere) hold an agent."""
        slot = slots[self._pos]
        on = np.zeros((self.batch_size, n + 1), dtype=bool)
        on[self._episode, np.where(slot >= 0, slot, n)] = True
        return on[:, :n]

    # ------------------------------------------------------------------ returns
    def optimal_collective_return(self) -> None:
        """Unknown: no exact optimum is computable for these games (normalisers must handle None)."""
        return None

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """Mean collective return of uniformly random actions: ``FLOOR_EPISODES`` Monte Carlo episodes
        (seed ``FLOOR_SEED``), computed once per configuration and cached; ``floor_standard_error``
        gives its standard error."""
        return self._floor()[0], "uniform_random"

    def floor_standard_error(self) -> float:
        """Standard error of ``floor_collective_return``'s Monte Carlo mean."""
        return self._floor()[1]

    def _floor(self) -> tuple[float, float]:
        key = (type(self).__name__, self.grid.rows, self.n_agents, self.horizon, self.firing)
        key += tuple(self.apple_values.tolist())
        if key not in _FLOOR_CACHE:
            env = type(self)(
                self.n_agents,
                FLOOR_EPISODES,
                horizon=self.horizon,
                firing=self.firing,
                apple_values=self.apple_values,
                ascii_map=self.grid.rows,
            )
            rng = np.random.default_rng(FLOOR_SEED)
            env.reset(rng)
            total = np.zeros(FLOOR_EPISODES)
            for _ in range(self.horizon):
                actions = rng.integers(0, self.n_actions, size=(FLOOR_EPISODES, self.n_agents))
                total += env.step(actions).rewards.sum(axis=1, dtype=np.float64)
            _FLOOR_CACHE[key] = float(total.mean()), float(total.std(ddof=1) / np.sqrt(FLOOR_EPISODES))
        return _FLOOR_CACHE[key]

    # ------------------------------------------------------------------ views of the current state
    @property
    def t(self) -> int:
        """Steps taken in the current episodes."""
        return self._t

    @property
    def cells(self) -> np.ndarray:
        """``[B, N]`` int64 copy of each agent's flat cell."""
        return self._require_pos().copy()

    @property
    def orientations(self) -> np.ndarray:
        """``[B, N]`` int64 copy of each agent's facing (UP, RIGHT, DOWN, LEFT = 0..3)."""
        self._require_pos()
        return self._orient.copy()

    @property
    def apples(self) -> np.ndarray:
        """``[B, H, W]`` bool: where apples are."""
        return self._dense(self._apples, self.apple_cells)

    def _dense(self, flags: np.ndarray, cells: np.ndarray) -> np.ndarray:
        out = np.zeros((self.batch_size, self.grid.n_cells), dtype=bool)
        out[:, cells] = flags
        return out.reshape(self.batch_size, self.grid.height, self.grid.width)

    def codes(self) -> np.ndarray:
        """``[B, H·W]`` uint8 ``Code`` of every cell: terrain, items, agents (``FIRST_AGENT + i``)."""
        pos = self._require_pos()
        codes = np.repeat(self.grid.terrain[None], self.batch_size, axis=0)
        codes[:, self.apple_cells] = np.where(self._apples, Code.APPLE, self.grid.terrain[self.apple_cells])
        self._draw_items(codes)
        codes[self._episode, pos] = Code.FIRST_AGENT + self._ids
        return codes

    def observations(self) -> np.ndarray:
        """``[B, N, V, V]`` uint8 egocentric views (V = 15, facing up; codes in ``Code``, ``n_codes`` of
        them). Built on demand only: ``step`` never builds them."""
        return egocentric_views(self.grid, self.codes(), self._pos, self._orient, self.view_size)

    def _state(self) -> np.ndarray:
        n, n_walk = self.n_agents, len(self.walkable)
        state = np.zeros((self.batch_size, self.state_dim), dtype=np.float32)
        state[:, : len(self.apple_cells)] = self._apples
        offset = len(self.apple_cells)
        for flags in self._item_flags():
            state[:, offset : offset + flags.shape[1]] = flags
            offset += flags.shape[1]
        state[self._episode, offset + self._ids * n_walk + self.walk_slot[self._pos]] = 1.0
        state[self._episode, offset + n * n_walk + 4 * self._ids + self._orient] = 1.0
        return state

    def _positions(self) -> np.ndarray:
        scale = max(self.grid.height, self.grid.width) - 1
        return (self.grid.row_col(self._pos) / scale).astype(np.float32)

    def _require_pos(self) -> np.ndarray:
        if self._pos is None:
            raise RuntimeError("the environment has no state yet; call reset(rng) first")
        return self._pos
