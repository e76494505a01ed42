"""A wrapper that gives every agent the team reward (the mean of the individual rewards).

The collective return (sum over agents) is unchanged, so optimum and floor carry over. Used by DPO's
team-reward benchmarks and as a diagnostic: a learner on the team reward shows what the collective
landscape alone allows, independent of how private rewards are shared.
"""

from __future__ import annotations

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, VecEnv


class TeamReward:
    """Wraps a ``VecEnv``; ``step`` returns ``rewards[b, i] = mean_j r[b, j]`` for every agent i."""

    def __init__(self, env: VecEnv) -> None:
        self.env = env
        self.n_agents = env.n_agents
        self.batch_size = env.batch_size
        self.horizon = env.horizon
        self.state_dim = env.state_dim
        self.n_actions = env.n_actions

    def reset(self, rng: np.random.Generator) -> Reset:
        return self.env.reset(rng)

    def step(self, actions: np.ndarray) -> StepResult:
        out = self.env.step(actions)
        team = np.repeat(out.rewards.mean(axis=1, keepdims=True), self.n_agents, axis=1).astype(np.float32)
        return StepResult(out.state, team, out.terminated, out.truncated, out.positions)

    def cooperative_action(self) -> np.ndarray:
        return self.env.cooperative_action()

    def optimal_collective_return(self) -> float:
        return self.env.optimal_collective_return()

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        return self.env.floor_collective_return()
