"""Cleanup (SSD; AS/SS Sec. 5.1; Christoffersen et al. 2023), batched: apples grow only if the river is clean.

Rules (canonical SSD, ``social_dilemmas/envs/cleanup.py``): apple cells start empty and river cells
(``H``, ``R``) start with the map's waste. Stepping onto an apple gives +1 (times the eater's private
``apple_values[i]``, canonical 1). The clean action fires a beam (``gridworld.cast_beams``: width 3,
length 5, stopped by walls and agents) whose rays each clear the first waste cell they reach and stop
there. After the moves, eating and beams, with waste density ``d = waste / river cells``:

* if ``d ≥ 0.4`` nothing spawns;
* otherwise one waste cell appears with probability ``1 − 0.5^k`` (``k`` clean river cells) at a
  uniformly random clean river cell — SSD's "try the clean river cells in random order, each with
  probability 0.5, stop at the first success", drawn in one go; waste may appear under an agent;
* and each empty apple cell without an agent grows an apple with probability ``0.05 · (1 − d / 0.4)``.

``d`` is measured after this step's cleaning and before its spawns. The shared mechanics (moves,
beams, state, views) are in ``gridworld.AppleGridEnv``.

Actions: ``gridworld.BASE_ACTIONS`` (0–6), ``clean`` = 7 and, when ``firing``, ``fire`` = 8.
State: 39 apple flags + 48 waste flags (one per river cell) + ``N × 144`` agent cells + ``N × 4``
orientations (S = 827 for N = 5).

Returns: ``optimal_collective_return()`` is None (unknown). ``floor_collective_return()`` is the
uniform-random policy's mean collective return over 500 Monte Carlo episodes (seed 0), cached per
configuration: with 5 agents and horizon 100, 0.42 (standard error 0.036) without firing and −1197.0
(s.e. 17.5) with firing; ``floor_standard_error()`` reports it for any configuration.

Choice — the map: the papers' 11×18 map is not public; ``CLEANUP_MAP`` is a reconstruction, a wall
row, rows 4–12 (0-based) of the canonical 25×18 ``CLEANUP_MAP`` and a wall row: both stream rows, 6
spawn points, 22 waste of 48 river cells, so episodes start at density 0.458, above the threshold —
nothing grows until the agents clean.

Choice — IMR's cooperative act: cleaning waste. ``cooperative_action`` is ``CLEAN`` where the agent's
clean beam would clear at least one waste cell from the current state, and ``NO_COOPERATIVE_ACT`` (−1,
equal to no action) elsewhere, so the bonus rewards cleaning that cleans, not firing at clean water.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from confide.envs.gridworld import AppleGridEnv, Code, cast_beams

CLEANUP_MAP: tuple[str, ...] = (
    # Reconstruction (not the papers' map): wall row + rows 4-12 of SSD's canonical CLEANUP_MAP + wall row.
    "@@@@@@@@@@@@@@@@@@",
    "@RRRRR  P    BBBB@",
    "@RRRRR    P BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRRR      BBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@RRRRR   P P BBBB@",
    "@HHHHH   P  BBBBB@",
    "@RRRRRR    P BBBB@",
    "@@@@@@@@@@@@@@@@@@",
)

CLEAN = 7
"""Index of the clean action (the fire action, when enabled, is 8)."""

WASTE_THRESHOLD = 0.4
"""At waste density ≥ this nothing spawns; below it apples grow at ``APPLE_GROWTH · (1 − d / 0.4)``."""

WASTE_SPAWN_PROB = 0.5
APPLE_GROWTH = 0.05

NO_COOPERATIVE_ACT = -1
"""``cooperative_action`` where no cooperative act is available (no action index equals it)."""


class Cleanup(AppleGridEnv):
    """A batch of ``batch_size`` Cleanup episodes (implements ``confide.envs.base.VecEnv``).

    Args:
        n_agents: agents ``N`` (1–6 on the default map; 5 by default).
        batch_size: episodes ``B`` stepped at once.
        horizon: steps per episode (100).
        firing: enable the penalty beam (fire −1 to the firer, −50 per agent hit); default off.
        apple_values: ``[N]`` each agent's private value of an apple (default all 1, canonical); see
            ``gridworld.draw_private_params``.
        ascii_map: the map (default ``CLEANUP_MAP``); characters ``@``, `` ``, ``P``, ``A``, ``B``,
            ``H``, ``R``, ``S``. It needs at least one river cell.
    """

    map_chars = "@ PABHRS"
    game_actions = ("clean",)

    def __init__(
        self,
        n_agents: int = 5,
        batch_size: int = 1,
        *,
        horizon: int = 100,
        firing: bool = False,
        apple_values: Sequence[float] | np.ndarray | None = None,
        ascii_map: Sequence[str] = CLEANUP_MAP,
    ):
        super().__init__(
            ascii_map, n_agents, batch_size, horizon=horizon, firing=firing, apple_values=apple_values
        )
        self._waste = np.zeros((self.batch_size, len(self.river_cells)), dtype=bool)

    # ------------------------------------------------------------------ hooks
    def _setup(self) -> None:
        self.river_cells = self.grid.cells("HR")
        if len(self.river_cells) == 0:
            raise ValueError("a Cleanup map needs river cells ('H' or 'R')")
        self.river_slot = self.grid.slots(self.river_cells)

    def _n_item_flags(self) -> int:
        return len(self.river_cells)

    def _reset_items(self, items: dict[str, np.ndarray | None]) -> None:
        unexpected = set(items) - {"waste"}
        if unexpected:
            raise ValueError(f"unexpected layers {sorted(unexpected)}; Cleanup takes 'waste'")
        waste = self._layer("waste", items.get("waste"), self.river_cells)
        if waste is None:
            initial = np.isin(self.river_cells, self.grid.cells("H"))
            waste = np.repeat(initial[None], self.batch_size, axis=0)
        self._waste = waste

    def _item_flags(self) -> list[np.ndarray]:
        return [self._waste]

    def _draw_items(self, codes: np.ndarray) -> None:
        codes[:, self.river_cells] = np.where(self._waste, Code.WASTE, Code.RIVER)

    def _game_actions(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        b, i = np.nonzero(actions == CLEAN)
        if len(b):
            self._clean(b, i)

    def _spawn(self, rng: np.random.Generator) -> None:
        apple_draws = rng.random(self._apples.shape)
        waste_draw = rng.random(self.batch_size)
        waste_keys = rng.random(self._waste.shape)
        density = self.waste_density()
        below = density < WASTE_THRESHOLD
        prob = np.where(below, APPLE_GROWTH * (1.0 - density / WASTE_THRESHOLD), 0.0)
        free = ~self._apples & ~self._agents_on(self.apple_slot, len(self.apple_cells))
        self._apples |= free & (apple_draws < prob[:, None])
        clean = ~self._waste
        spawn = below & (waste_draw < 1.0 - WASTE_SPAWN_PROB ** clean.sum(axis=1))
        where = np.argmax(np.where(clean, waste_keys, -1.0), axis=1)
        self._waste[np.flatnonzero(spawn), where[spawn]] = True

    # ------------------------------------------------------------------ cleaning
    def _clean_beams(self, b: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clean beams of agents ``(b, i)``: ray cells ``[M, 3, L]``, their river slots, cleared mask."""
        waste = np.zeros((self.batch_size, self.grid.n_cells), dtype=bool)
        waste[:, self.river_cells] = self._waste
        absorbing = waste.copy()
        absorbing[self._episode, self._pos] = True
        cells, covered = cast_beams(self.grid, b, self._pos[b, i], self._orient[b, i], absorbing)
        cleared = covered & waste[b[:, None, None], cells]
        return cells, self.river_slot[cells], cleared

    def _clean(self, b: np.ndarray, i: np.ndarray) -> None:
        _, slot, cleared = self._clean_beams(b, i)
        episode = np.broadcast_to(b[:, None, None], slot.shape)
        self._waste[episode[cleared], slot[cleared]] = False

    def cooperative_action(self) -> np.ndarray:
        """``[B, N]`` int64: ``CLEAN`` where cleaning now would clear waste, else −1 (module doc)."""
        self._require_pos()
        b, i = np.divmod(np.arange(self.batch_size * self.n_agents), self.n_agents)
        _, _, cleared = self._clean_beams(b, i)
        would_clear = cleared.any(axis=(1, 2)).reshape(self.batch_size, self.n_agents)
        return np.where(would_clear, CLEAN, NO_COOPERATIVE_ACT).astype(np.int64)

    # ------------------------------------------------------------------ views
    def waste_density(self) -> np.ndarray:
        """``[B]`` float64: waste cells / river cells."""
        return self._waste.mean(axis=1)

    @property
    def waste(self) -> np.ndarray:
        """``[B, H, W]`` bool: where waste is."""
        return self._dense(self._waste, self.river_cells)
