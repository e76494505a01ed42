"""Harvest (SSD; AS/SS Sec. 5.1; Christoffersen et al. 2023), batched: a common-pool apple orchard.

Rules (canonical SSD, ``social_dilemmas/envs/harvest.py``): every apple cell starts with an apple;
stepping onto an apple gives +1 (times the eater's private ``apple_values[i]``, canonical 1). After the
moves, eating and beams, each empty apple cell without an agent regrows with probability
``REGROWTH_PROBS[min(k, 3)] = [0, 0.005, 0.02, 0.05][min(k, 3)]``, ``k`` the apples in its 3×3
neighbourhood counted before this step's regrowth. A patch eaten bare never comes back: the dilemma.
The shared mechanics (moves, beams, state, views) are in ``gridworld.AppleGridEnv``.

Actions: ``gridworld.BASE_ACTIONS`` (0–6) and, when ``firing``, ``fire`` = 7. ``n_actions`` = 7 or 8.
State: 58 apple flags + ``N × 180`` agent cells + ``N × 4`` orientations (S = 978 for N = 5).

Returns: ``optimal_collective_return()`` is None (unknown). ``floor_collective_return()`` is the
uniform-random policy's mean collective return over 500 Monte Carlo episodes (seed 0), cached per
configuration: with 5 agents and horizon 100, 31.58 (standard error 0.28) without firing and −580.9
(s.e. 14.4) with firing; ``floor_standard_error()`` reports it for any configuration.

Choice — the map: the papers' 7×38 map is not public; ``HARVEST_MAP`` is a reconstruction, a wall row,
rows 1–5 (0-based) of the canonical 16×38 ``HARVEST_MAP`` and a wall row (58 apple cells, 9 spawn
points).

Choice — IMR's cooperative act (SS names it, the rule is ours): abstaining from a *scarce* apple, one
whose 3×3 neighbourhood holds fewer than 2 other apples (eating it leaves its cell regrowing at
≤ 0.005 per step). The contract asks for one action, so the act is expressed as ``STAY``: where one of
the agent's four moves would step onto a scarce apple now, ``cooperative_action`` is ``STAY`` (holding
back is the cooperative act); elsewhere it is ``NO_COOPERATIVE_ACT`` (−1), which no action equals.
Turning or walking away also abstain but earn no IMR bonus under this representation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from confide.envs.gridworld import STAY, AppleGridEnv

HARVEST_MAP: tuple[str, ...] = (
    # Reconstruction (not the papers' map): wall row + rows 1-5 of SSD's canonical HARVEST_MAP + wall row.
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@ P   P      A    P AAAAA    P  A P  @",
    "@  P     A P AA    P    AAA    A  A  @",
    "@     A AAA  AAA    A    A AA AAAA   @",
    "@ A  AAA A    A  A AAA  A  A   A A   @",
    "@AAA  A A    A  AAA A  AAA        A P@",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)

REGROWTH_PROBS = np.array([0.0, 0.005, 0.02, 0.05])
"""Regrowth probability by the number of apples in the 3×3 neighbourhood, capped at 3 (SSD)."""

SCARCE_BELOW = 2
"""An apple with fewer than this many other apples in its 3×3 neighbourhood is scarce (IMR choice)."""

NO_COOPERATIVE_ACT = -1
"""``cooperative_action`` where no cooperative act is available (no action index equals it)."""


class Harvest(AppleGridEnv):
    """A batch of ``batch_size`` Harvest episodes (implements ``confide.envs.base.VecEnv``).

    Args:
        n_agents: agents ``N`` (1–9 on the default map; 5 by default).
        batch_size: episodes ``B`` stepped at once.
        horizon: steps per episode (100).
        firing: enable the penalty beam (fire −1 to the firer, −50 per agent hit); default off.
        apple_values: ``[N]`` each agent's private value of an apple (default all 1, canonical); see
            ``gridworld.draw_private_params``.
        ascii_map: the map (default ``HARVEST_MAP``); characters ``@``, `` ``, ``P``, ``A``, ``B``.
    """

    def __init__(
        self,
        n_agents: int = 5,
        batch_size: int = 1,
        *,
        horizon: int = 100,
        firing: bool = False,
        apple_values: Sequence[float] | np.ndarray | None = None,
        ascii_map: Sequence[str] = HARVEST_MAP,
    ):
        super().__init__(
            ascii_map, n_agents, batch_size, horizon=horizon, firing=firing, apple_values=apple_values
        )

    def _setup(self) -> None:
        self._neighbours = self.grid.neighbourhood(self.apple_cells)  # [n_apple, k], padded with n_apple

    def neighbour_counts(self) -> np.ndarray:
        """``[B, n_apple_cells]`` int64: apples in each apple cell's 3×3 neighbourhood (itself excluded)."""
        padded = np.concatenate([self._apples, np.zeros((self.batch_size, 1), dtype=bool)], axis=1)
        return np.count_nonzero(padded[:, self._neighbours], axis=2)

    def _spawn(self, rng: np.random.Generator) -> None:
        prob = REGROWTH_PROBS[np.minimum(self.neighbour_counts(), 3)]
        free = ~self._apples & ~self._agents_on(self.apple_slot, len(self.apple_cells))
        self._apples |= free & (rng.random(self._apples.shape) < prob)

    def cooperative_action(self) -> np.ndarray:
        """``[B, N]`` int64: ``STAY`` where a move would eat a scarce apple now, else −1 (module doc)."""
        pos = self._require_pos()
        scarce = self._apples & (self.neighbour_counts() < SCARCE_BELOW)
        scarce = np.concatenate([scarce, np.zeros((self.batch_size, 1), dtype=bool)], axis=1)
        slot = self.apple_slot[pos[:, :, None] + self.grid.steps]  # [B, N, 4], −1 off apple cells
        tempted = scarce[self._episode[:, :, None], slot].any(axis=2)  # slot −1 reads the False column
        return np.where(tempted, STAY, NO_COOPERATIVE_ACT).astype(np.int64)
