"""The four 2×2 cooperative matrix games of DPO App. C (Table 3), as exact maths and as a batched env.

Agent 1 plays action 0 with probability ``p``, agent 2 plays action 0 with probability ``q``. The joint
payoff is ``a`` for (0, 0), ``b`` for (0, 1), ``c`` for (1, 0) and ``d`` for (1, 1); both agents receive it
(a team reward). ``J(p, q) = p q a + p (1−q) b + (1−p) q c + (1−p)(1−q) d``.

Games (a, b, c, d): 1 = (5, 7, 6, 4), 2 = (1, 3, 5, 4), 3 = (7, 1, 1, 3), 4 = (20, 0, 0, 10).

``MatrixGame`` holds the team-payoff maths (J, its optimum); ``MatrixGameEnv`` is the one-shot ``VecEnv``
whose *collective* returns are sums over the two agents, i.e. ``2 × J`` (so ``normalized_return`` of
decision 14 sees one scale for R, optimum and floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, check_actions


@dataclass(frozen=True, eq=False)
class MatrixGame:
    """A two-agent, two-action team game.

    Attributes:
        name: identifier, e.g. ``"matrix_game_1"``.
        payoff: ``[2, 2]`` float64 (read-only), ``payoff[a1, a2]`` = team reward of the joint action.
    """

    name: str
    payoff: np.ndarray

    def __post_init__(self) -> None:
        payoff = np.array(self.payoff, dtype=np.float64)
        if payoff.shape != (2, 2):
            raise ValueError(f"payoff must have shape (2, 2), got {payoff.shape}")
        payoff.setflags(write=False)
        object.__setattr__(self, "payoff", payoff)

    @classmethod
    def from_abcd(cls, name: str, a: float, b: float, c: float, d: float) -> MatrixGame:
        """Build from DPO Table 3's ``(a, b, c, d)``: (0,0)→a, (0,1)→b, (1,0)→c, (1,1)→d."""
        return cls(name, np.array([[a, b], [c, d]]))

    def expected_return(self, p: float | np.ndarray, q: float | np.ndarray) -> float | np.ndarray:
        """``J(p, q)``: expected team payoff when agent 1 plays 0 w.p. ``p`` and agent 2 plays 0 w.p. ``q``.

        ``p`` and ``q`` broadcast; a float is returned when both are scalars.
        """
        p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
        if np.any((p < 0) | (p > 1)) or np.any((q < 0) | (q > 1)):
            raise ValueError("p and q are probabilities and must lie in [0, 1]")
        (a, b), (c, d) = self.payoff
        j = p * q * a + p * (1 - q) * b + (1 - p) * q * c + (1 - p) * (1 - q) * d
        return float(j) if j.ndim == 0 else j

    def optimum(self) -> float:
        """The best expected team payoff: the largest entry (reached by a deterministic joint action)."""
        return float(self.payoff.max())

    def optimal_policy(self) -> tuple[float, float]:
        """``(p, q)`` of a deterministic joint policy reaching ``optimum()`` (the first best entry)."""
        a1, a2 = np.unravel_index(int(np.argmax(self.payoff)), (2, 2))
        return float(a1 == 0), float(a2 == 0)

    def uniform_random_return(self) -> float:
        """``J(1/2, 1/2)``: the mean payoff."""
        return float(self.payoff.mean())


MATRIX_GAMES: tuple[MatrixGame, ...] = (
    MatrixGame.from_abcd("matrix_game_1", 5, 7, 6, 4),
    MatrixGame.from_abcd("matrix_game_2", 1, 3, 5, 4),
    MatrixGame.from_abcd("matrix_game_3", 7, 1, 1, 3),
    MatrixGame.from_abcd("matrix_game_4", 20, 0, 0, 10),
)


def matrix_game(name: str) -> MatrixGame:
    """Look up one of ``MATRIX_GAMES`` by name."""
    for game in MATRIX_GAMES:
        if game.name == name:
            return game
    known = ", ".join(g.name for g in MATRIX_GAMES)
    raise ValueError(f"unknown matrix game {name!r}; known games: {known}")


class MatrixGameEnv:
    """A batch of one-shot plays of a ``MatrixGame`` (implements ``confide.envs.base.VecEnv``).

    Shapes: state ``[B, 1]`` float32 zeros (a single constant state), actions ``[B, 2]`` integer in
    ``[0, 2)``, rewards ``[B, 2]`` float32 (both agents get the team payoff), terminated ``[B]`` True after
    the single step (the game ends; choice: a terminal state, not a time limit), truncated ``[B]`` False,
    positions ``None``. Nothing is random: ``reset`` accepts a generator for the contract and draws nothing.
    """

    n_agents: int = 2
    n_actions: int = 2
    horizon: int = 1
    state_dim: int = 1
    state_bounds: tuple[float, float] = (0.0, 0.0)

    def __init__(self, game: MatrixGame | str, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.game = matrix_game(game) if isinstance(game, str) else game
        self.batch_size = int(batch_size)
        self._t: int | None = None

    def reset(self, rng: np.random.Generator) -> Reset:
        """Start ``B`` one-shot games; ``rng`` is unused (the game is deterministic)."""
        self._t = 0
        return Reset(state=self._state(), positions=None)

    def step(self, actions: np.ndarray) -> StepResult:
        """Pay ``payoff[a1, a2]`` to both agents of every game; the episode then ends."""
        if self._t is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError("the one-shot game has ended; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        team = self.game.payoff[actions[:, 0], actions[:, 1]]  # [B]
        self._t += 1
        return StepResult(
            state=self._state(),
            rewards=np.repeat(team[:, None], self.n_agents, axis=1).astype(np.float32),
            terminated=np.ones(self.batch_size, dtype=bool),
            truncated=np.zeros(self.batch_size, dtype=bool),
            positions=None,
        )

    def cooperative_action(self) -> np.ndarray:
        """``[B, 2]``: each agent's part of the best joint action (choice, used by IMR and diagnostics).

        A team game has no dilemma, so "cooperating" is read as playing one's part of the team optimum
        (the first best entry). It is designer's knowledge, which is exactly what IMR assumes.
        """
        a1, a2 = np.unravel_index(int(np.argmax(self.game.payoff)), (2, 2))
        return np.tile(np.array([a1, a2], dtype=np.int64), (self.batch_size, 1))

    def optimal_collective_return(self) -> float:
        """``2 × max payoff``: the best joint action, summed over both agents."""
        return self.n_agents * self.game.optimum()

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """``2 × mean payoff``: the uniform-random joint policy's expected collective return."""
        return self.n_agents * self.game.uniform_random_return(), "uniform_random"

    def _state(self) -> np.ndarray:
        return np.zeros((self.batch_size, self.state_dim), dtype=np.float32)
