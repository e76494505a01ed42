"""The contract every confide environment meets.

Environments are batched: ``B`` episodes are stepped at once and the agent axis lives inside the
batch, so a step is a handful of numpy operations whatever ``B`` and ``N`` are. Every stochastic
choice draws from the ``numpy.random.Generator`` passed to ``reset`` (derived from the run seed), so a
run is reproducible. Rewards are individual: ``[B, N]``, each agent's own, private reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

FloorKind = Literal["all_defect", "uniform_random"]


@dataclass(frozen=True)
class StepResult:
    """What one batched step returns.

    Attributes:
        state: ``[B, S]`` float32, the global state after the step (what every agent observes).
        rewards: ``[B, N]`` float32, each agent's individual reward for this step.
        terminated: ``[B]`` bool, the episode reached a terminal state.
        truncated: ``[B]`` bool, the episode hit the time limit.
        positions: ``[B, N, D]`` float32 agent positions after the step (for dynamic
            neighbourhoods), or ``None`` when the environment has no geometry.
    """

    state: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    positions: np.ndarray | None


@dataclass(frozen=True)
class Reset:
    """What ``reset`` returns: the first global state ``[B, S]`` and positions ``[B, N, D]`` or None."""

    state: np.ndarray
    positions: np.ndarray | None


class VecEnv(Protocol):
    """A batch of ``batch_size`` episodes of one multi-agent environment with individual rewards."""

    n_agents: int
    batch_size: int
    horizon: int
    state_dim: int
    n_actions: int

    def reset(self, rng: np.random.Generator) -> Reset:
        """Start ``batch_size`` fresh episodes; all randomness comes from ``rng``."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply integer actions ``[B, N]`` in ``[0, n_actions)``; raise ValueError on bad input."""
        ...

    def cooperative_action(self) -> np.ndarray:
        """``[B, N]`` int: the action that is the cooperative act for each agent in the current state.

        Used by IMR's intrinsic bonus and by diagnostics (e.g. the proportion of "approach" in an
        anticipation). Environments without a per-action cooperative act raise NotImplementedError.
        """
        ...

    def optimal_collective_return(self) -> float:
        """The best achievable expected undiscounted collective episode return (sum over agents)."""
        ...

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """The floor used by ``normalized_return`` and which one it is (decision 14)."""
        ...


def check_actions(actions: np.ndarray, batch_size: int, n_agents: int, n_actions: int) -> np.ndarray:
    """Validate a batch of discrete actions and return it as ``[B, N]`` int64.

    Raises ValueError on a wrong shape, a non-integer dtype (bool included), or a value outside
    ``[0, n_actions)``; the last names the first offending agent, e.g. "agent 3: action 5 out of range
    [0, 2) (episode 0)".
    """
    actions = np.asarray(actions)
    expected = (batch_size, n_agents)
    if actions.shape != expected:
        raise ValueError(f"actions must have shape [B, N] = {expected}, got {actions.shape}")
    if actions.dtype.kind not in "iu":  # bool is kind "b": rejected
        raise ValueError(f"actions must be integers in [0, {n_actions}), got dtype {actions.dtype}")
    # One reduction checks both ends: viewed as unsigned, a negative action is a huge number.
    unsigned = actions.view(np.dtype(f"u{actions.dtype.itemsize}"))
    if unsigned.size and unsigned.max() >= n_actions:
        bad = (actions < 0) | (actions >= n_actions)
        b, i = np.argwhere(bad)[0]
        raise ValueError(f"agent {i}: action {actions[b, i]} out of range [0, {n_actions}) (episode {b})")
    return actions.astype(np.int64, copy=False)
