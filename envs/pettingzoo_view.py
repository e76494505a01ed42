"""A PettingZoo ``ParallelEnv`` view of one episode of any confide ``VecEnv``.

The view builds the batched environment with ``batch_size=1`` and converts between agent-keyed dicts
and the stacked ``[1, N]`` arrays in one place. Every agent observes the global state (the papers' MMDP
setting). ``reset(seed=s)`` seeds ``numpy.random.default_rng(s)`` and resets the batched env from it, so
the view with seed ``s`` replays exactly the batched env with batch 1 reset from ``default_rng(s)``;
later ``reset()`` calls without a seed keep drawing from that generator. Checked with PettingZoo's
``parallel_api_test`` and ``parallel_seed_test``.

Observation bounds come from the env's optional ``state_bounds: tuple[float, float]`` attribute
(``(-inf, inf)`` when absent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from confide.envs.base import VecEnv


class ParallelEpisode(ParallelEnv):
    """One episode at a time of a batched env, through the PettingZoo parallel API.

    Args:
        env_fn: factory called as ``env_fn(batch_size=1)`` returning a ``VecEnv``, e.g.
            ``functools.partial(CooperativePredation, 8, scheme="ss")``.
        name: shown in ``metadata["name"]``; defaults to the env's class name.

    Agents are ``"agent_0" … "agent_{N-1}"``. Observations are ``[S]`` float32 copies of the global
    state; rewards are Python floats (each agent's individual reward).
    """

    metadata: dict[str, Any] = {"render_modes": [], "name": "confide_parallel_episode"}

    def __init__(self, env_fn: Callable[..., VecEnv], name: str | None = None):
        self.env = env_fn(batch_size=1)
        if self.env.batch_size != 1:
            raise ValueError(f"env_fn(batch_size=1) returned an env with batch_size {self.env.batch_size}")
        self.metadata = {"render_modes": [], "name": name or type(self.env).__name__}
        self.possible_agents = [f"agent_{i}" for i in range(self.env.n_agents)]
        self.agents: list[str] = []
        self.render_mode = None
        low, high = getattr(self.env, "state_bounds", (-np.inf, np.inf))
        obs_space = spaces.Box(low=low, high=high, shape=(self.env.state_dim,), dtype=np.float32)
        # One space object per agent, returned by identity on every call (PettingZoo requires it).
        self.observation_spaces = {agent: obs_space for agent in self.possible_agents}
        self.action_spaces = {agent: spaces.Discrete(self.env.n_actions) for agent in self.possible_agents}
        self._rng: np.random.Generator | None = None
        self._state: np.ndarray | None = None  # [S] float32

    def observation_space(self, agent: str) -> spaces.Box:
        """The global state's Box, ``[S]`` float32 (one object shared by every agent)."""
        self._check_agent(agent)
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        """``Discrete(n_actions)``, one object per agent so each can be seeded on its own."""
        self._check_agent(agent)
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode; a given ``seed`` re-seeds the generator, otherwise the current one is reused."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        first = self.env.reset(self._rng)
        self._state = first.state[0]
        self.agents = list(self.possible_agents)
        return self._observations(), {agent: {} for agent in self.agents}

    def step(
        self, actions: dict[str, int]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply one action per live agent; the agents list empties when the episode ends."""
        if not self.agents:
            raise RuntimeError("no live agents: call reset() before step()")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"missing actions for {', '.join(missing)}; every live agent acts each step")
        stacked = np.array([[int(actions[agent]) for agent in self.possible_agents]], dtype=np.int64)
        result = self.env.step(stacked)
        self._state = result.state[0]
        agents = self.possible_agents  # agents are all live until the episode ends together
        observations = self._observations()
        rewards = {agent: float(result.rewards[0, i]) for i, agent in enumerate(agents)}
        terminations = dict.fromkeys(agents, bool(result.terminated[0]))
        truncations = dict.fromkeys(agents, bool(result.truncated[0]))
        infos: dict[str, dict[str, Any]] = {agent: {} for agent in agents}
        if result.terminated[0] or result.truncated[0]:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state ``[S]`` float32."""
        if self._state is None:
            raise RuntimeError("no state yet: call reset() first")
        return self._state.copy()

    def render(self) -> None:
        """Nothing to render."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: self._state.copy() for agent in self.possible_agents}

    def _check_agent(self, agent: str) -> None:
        if agent not in self.possible_agents:
            last = self.possible_agents[-1]
            raise ValueError(f"unknown agent {agent!r}; agents are agent_0 … {last}")
