"""The three MPE tasks of DPO Sec. 4.2 / App. A.1: simple spread, line control, circle control.

All three are batched ``VecEnv``s (``confide.envs.base``) over :mod:`confide.envs.mpe_physics`: ``N``
agents (5 in the paper) with 5 discrete actions (none, left, right, down, up), fixed episodes of
``horizon`` = 25 steps (``truncated`` at the end, never ``terminated``), rewards computed after the
physics step. Every agent's individual reward is ``[B, N]``; the collective return is its sum over
agents.

Tasks (facts from mpe2 1.1.1, ``sumitsk/marl_transfer`` and DPO's ports of the latter):

* :class:`SimpleSpread` — ``N`` agents (radius 0.15) and ``N`` landmarks, all uniform in ``[−1, 1]²``.
  ``team`` (DPO's port of mpe2's task): every agent gets the shared term ``−Σ_l min_i ‖x_i − l‖`` minus
  its own collisions, ``w_i × (number of agents it overlaps)``, ``w_i`` = 1.
  ``private`` (choice): ``−‖x_i − l_{σ(i)}‖ − w_i × collisions_i`` with ``σ`` the minimum-total-distance
  (Hungarian) matching of agents to landmarks, recomputed every step.
* :class:`LineControl` — 2 landmarks 1.25 apart: landmark 0 uniform in ``[−0.25, 0.25]²``, landmark 1
  in a uniform random direction, turned by 5° steps until it lies inside ``(−1, 1)²``; targets evenly
  spaced from landmark 0 to landmark 1.
* :class:`CircleControl` — 1 landmark uniform in ``[−0.25, 0.25]²`` (DPO's port; sumitsk and mpe2 use
  ``[−0.5, 0.5]²``); targets evenly spaced on the radius-0.5 circle about it, re-anchored every step at
  the agent with the smallest polar angle (in ``[0, 2π)``) about the landmark.

  For both formation tasks agents (radius 0.03, as in DPO's ports) start uniform in ``[−1, 1]²`` and are
  matched to targets by the minimum-total-distance matching ``σ`` every step. ``team`` (DPO's ports):
  every agent gets ``clip(−mean_i d_i − (1/N) Σ_i c_i, −15, 15)`` with ``d_i = ‖x_i − t_{σ(i)}‖`` and
  ``c_i = (w_i / 2) × collisions_i``, ``w_i`` = 0 by default (DPO's ``collision_penal``). DPO's ports also
  count every agent as colliding with itself, a constant ``−w/2`` per step that confide leaves out.
  ``private`` (choice): ``clip(−d_i − c_i, −15, 15)``; unclipped, the private rewards sum to ``N`` times
  the team reward.

Observations (DPO's ports, partially observable): agent ``i`` sees ``[v_i, x_i, landmarks − x_i,
other agents − x_i]`` (others in index order), ``O = 4 + 2L + 2(N − 1)`` float32, where an entity at
distance ``≥ vision`` (default 1) is zeroed; ``vision=None`` sees everything (then equal to mpe2's
observation without its always-zero communication slots). The global state ``[B, S]`` float32 is
``[x_1 … x_N, v_1 … v_N, l_1 … l_L]`` (``S = 4N + 2L``), what confide's MLPs consume; positions
``[B, N, 2]`` float32 are raw world coordinates (suggested neighbourhood: radius = vision = 1).

Choices, all here: integration order ``position_first`` (mpe2; ``velocity_first`` is DPO's MAPPO core),
see :mod:`confide.envs.mpe_physics`. Private reward parameter: a per-agent collision weight ``w_i``;
:meth:`MpeTask.draw_private_params` draws ``w_i ~ U(0, 2)`` (mean 1, spread's penalty) and installs it.
No collective optimum is known (:meth:`MpeTask.optimal_collective_return` is None); the floor is the
uniform-random joint policy's expected return by Monte Carlo (:data:`FLOOR_EPISODES` episodes,
seed :data:`FLOOR_SEED`, cached). For ``N`` = 5, 25 steps, default weights (mean ± standard error):
spread −354.07 ± 0.82 (team) / −109.36 ± 0.26 (private); line −111.73 ± 0.28; circle −80.94 ± 0.19
(line and circle equal in both modes, no step being clipped). ``reset`` draws each episode's
uniforms in batch order, so a batch of ``B`` equals ``B`` single-episode envs reset one after another
from the same generator, and a batch-1 ``SimpleSpread`` or ``LineControl`` reset from
``default_rng(s)`` starts where mpe2's ``reset(seed=s)`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from confide.envs.assignment import matched_costs
from confide.envs.base import FloorKind, Reset, StepResult, check_actions
from confide.envs.mpe_physics import (
    N_MOVES,
    IntegrationOrder,
    ParticleParams,
    collision_counts,
    physics_step,
)

RewardMode = Literal["team", "private"]
REWARD_MODES: tuple[str, ...] = get_args(RewardMode)

HORIZON = 25
VISION = 1.0
REWARD_CLIP = 15.0
"""Formation rewards are clipped to ``[−15, 15]`` (DPO's ports)."""
PRIVATE_WEIGHT_RANGE = (0.0, 2.0)
"""``draw_private_params`` draws each agent's collision weight uniformly in this range."""
FLOOR_EPISODES = 10_000
FLOOR_SEED = 0


@dataclass(frozen=True)
class FloorEstimate:
    """Monte Carlo estimate of the uniform-random joint policy's expected collective return."""

    mean: float
    standard_error: float
    episodes: int
    seed: int


_FLOOR_CACHE: dict[tuple, FloorEstimate] = {}


class MpeTask:
    """Shared plumbing of the three MPE tasks (one batch of ``batch_size`` episodes).

    Args:
        n_agents: ``N`` (≥ 2; the paper uses 5).
        batch_size: ``B`` episodes stepped at once (≥ 1).
        reward_mode: ``"team"`` (DPO's rules) or ``"private"`` (choice; module docstring).
        vision: observation radius (> 0), or None for full observability.
        horizon: steps per episode (DPO: 25).
        collision_weights: per-agent collision weights ``w``: a float for all, ``N`` floats, or None for
            the task's default (spread 1, line and circle 0). Non-negative.
        integration: physics integration order (``confide.envs.mpe_physics``).

    Shapes: actions ``[B, N]`` int in ``[0, 5)``; state ``[B, 4N + 2L]`` float32; rewards ``[B, N]``
    float32; terminated/truncated ``[B]`` bool; positions ``[B, N, 2]`` float32; observations
    ``[B, N, 4 + 2L + 2(N − 1)]`` float32.
    """

    n_actions: int = N_MOVES
    agent_size: float = 0.05
    default_collision_weight: float = 0.0

    def __init__(
        self,
        n_agents: int = 5,
        batch_size: int = 1,
        *,
        reward_mode: RewardMode = "team",
        vision: float | None = VISION,
        horizon: int = HORIZON,
        collision_weights: float | Sequence[float] | None = None,
        integration: IntegrationOrder = "position_first",
    ):
        if n_agents < 2:
            raise ValueError(f"{type(self).__name__} needs n_agents >= 2, got {n_agents}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"unknown reward_mode {reward_mode!r}; known: {', '.join(REWARD_MODES)}")
        if vision is not None and not vision > 0:
            raise ValueError(f"vision must be > 0 or None, got {vision!r}")
        self.n_agents = int(n_agents)
        self.batch_size = int(batch_size)
        self.horizon = int(horizon)
        self.reward_mode: RewardMode = reward_mode
        self.vision = None if vision is None else float(vision)
        self.params = ParticleParams(size=self.agent_size, order=integration)
        self.n_landmarks = self._n_landmarks()
        self.state_dim = 4 * self.n_agents + 2 * self.n_landmarks
        self.obs_dim = 4 + 2 * self.n_landmarks + 2 * (self.n_agents - 1)
        default = self.default_collision_weight if collision_weights is None else collision_weights
        self._weights = self._check_weights(default)
        n = self.n_agents
        self._others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64)
        self._pos: np.ndarray | None = None  # [B, N, 2] float64
        self._vel: np.ndarray | None = None  # [B, N, 2] float64
        self._landmarks: np.ndarray | None = None  # [B, L, 2] float64
        self._t = 0

    # ------------------------------------------------------------------ task hooks
    def _n_landmarks(self) -> int:
        raise NotImplementedError

    def _n_draws(self) -> int:
        """Uniform draws per episode at reset."""
        raise NotImplementedError

    def _layout(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Agent ``[B, N, 2]`` and landmark ``[B, L, 2]`` positions from uniforms ``u [B, _n_draws()]``."""
        raise NotImplementedError

    def rewards_for(self, pos: np.ndarray) -> np.ndarray:
        """``[B, N]`` float64 rewards when the agents stand at ``pos [B, N, 2]`` in the current episodes.

        ``step`` pays ``rewards_for`` of the positions after the physics step (as mpe2 and DPO's ports);
        public so the reward rules can be checked on hand-made configurations.
        """
        self._require()
        pos = np.asarray(pos, dtype=np.float64)
        if pos.shape != (self.batch_size, self.n_agents, 2):
            raise ValueError(f"pos must have shape {(self.batch_size, self.n_agents, 2)}, got {pos.shape}")
        return self._rewards(pos)

    def _rewards(self, pos: np.ndarray) -> np.ndarray:
        """Task rule behind :meth:`rewards_for`."""
        raise NotImplementedError

    def _on_start(self) -> None:
        """Per-episode precomputation after a reset (e.g. fixed targets)."""

    # ------------------------------------------------------------------ episode dynamics
    def reset(self, rng: np.random.Generator) -> Reset:
        """Start ``B`` episodes; episode ``b`` uses the ``b``-th block of uniforms drawn from ``rng``."""
        agent_pos, landmark_pos = self._layout(rng.random((self.batch_size, self._n_draws())))
        return self.reset_to(agent_pos, landmark_pos)

    def reset_to(
        self, agent_pos: np.ndarray, landmark_pos: np.ndarray, agent_vel: np.ndarray | None = None
    ) -> Reset:
        """Start episodes from given positions ``[B, N, 2]``, ``[B, L, 2]`` and velocities (default 0)."""
        b, n, lm = self.batch_size, self.n_agents, self.n_landmarks
        pos = np.array(agent_pos, dtype=np.float64)
        landmarks = np.array(landmark_pos, dtype=np.float64)
        vel = np.zeros_like(pos) if agent_vel is None else np.array(agent_vel, dtype=np.float64)
        for name, arr, shape in (
            ("agent_pos", pos, (b, n, 2)),
            ("landmark_pos", landmarks, (b, lm, 2)),
            ("agent_vel", vel, (b, n, 2)),
        ):
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or infinity")
        self._pos, self._vel, self._landmarks, self._t = pos, vel, landmarks, 0
        self._on_start()
        return Reset(state=self._state(), positions=self._pos.astype(np.float32))

    def step(self, actions: np.ndarray) -> StepResult:
        """Move every agent (``confide.envs.mpe_physics``), then pay the task's rewards."""
        if self._pos is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError(f"episode ended at step {self.horizon}; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        self._pos, self._vel = physics_step(self._pos, self._vel, actions, self.params)
        self._t += 1
        return StepResult(
            state=self._state(),
            rewards=self._rewards(self._pos).astype(np.float32),
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=np.full(self.batch_size, self._t >= self.horizon, dtype=bool),
            positions=self._pos.astype(np.float32),
        )

    def observations(self) -> np.ndarray:
        """``[B, N, O]`` float32 per-agent observations (module docstring), entities beyond vision zeroed."""
        pos, vel, landmarks = self._require()
        to_landmarks = landmarks[:, None, :, :] - pos[:, :, None, :]  # [B, N, L, 2]
        to_agents = pos[:, None, :, :] - pos[:, :, None, :]  # [b, i, j] = x_j − x_i
        to_others = to_agents[:, np.arange(self.n_agents)[:, None], self._others]  # [B, N, N−1, 2]
        if self.vision is not None:
            to_landmarks = self._within_vision(to_landmarks)
            to_others = self._within_vision(to_others)
        b, n = self.batch_size, self.n_agents
        parts = (vel, pos, to_landmarks.reshape(b, n, -1), to_others.reshape(b, n, -1))
        return np.concatenate(parts, axis=2).astype(np.float32)

    def _within_vision(self, offsets: np.ndarray) -> np.ndarray:
        seen = np.sqrt(np.square(offsets).sum(axis=-1, keepdims=True)) < self.vision
        return np.where(seen, offsets, 0.0)

    def _collision_costs(self, pos: np.ndarray) -> np.ndarray:
        """``[B, N]`` float64 ``w_i ×`` (number of agents agent ``i`` overlaps)."""
        if not self._weights.any():  # the formations' default: skip the pairwise test
            return np.zeros((self.batch_size, self.n_agents))
        return self._weights[None, :] * collision_counts(pos, self.params.size)

    # ------------------------------------------------------------------ private parameters
    def draw_private_params(self, rng: np.random.Generator) -> np.ndarray:
        """Draw per-agent collision weights ``w_i ~ U(0, 2)`` from ``rng``, install them, return ``[N]``.

        The default (never drawn) weights follow the paper's rules: 1 for spread, 0 for line/circle.
        """
        weights = rng.uniform(*PRIVATE_WEIGHT_RANGE, size=self.n_agents)
        self.set_private_params(weights)
        return weights.copy()

    def set_private_params(self, collision_weights: float | Sequence[float]) -> None:
        """Install per-agent collision weights (a float for all agents or ``N`` non-negative floats)."""
        self._weights = self._check_weights(collision_weights)

    @property
    def collision_weights(self) -> np.ndarray:
        """``[N]`` float64 copy of the per-agent collision weights ``w``."""
        return self._weights.copy()

    def _check_weights(self, weights: float | Sequence[float]) -> np.ndarray:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (self.n_agents,)).copy()
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"collision weights must be finite and >= 0, got {w.tolist()}")
        w.setflags(write=False)
        return w

    # ------------------------------------------------------------------ returns (decision 14)
    def cooperative_action(self) -> np.ndarray:
        """MPE tasks have no per-action cooperative act."""
        raise NotImplementedError(f"{type(self).__name__} has no per-action cooperative act")

    def optimal_collective_return(self) -> float | None:
        """None: no optimum is known. Rewards are ≤ 0, so 0 bounds it, but no policy reaches 0 (agents
        start about 1 unit from their targets and move at most ~0.2 per step)."""
        return None

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """The uniform-random joint policy's expected collective return (Monte Carlo, cached)."""
        return self.floor_estimate().mean, "uniform_random"

    def floor_estimate(self) -> FloorEstimate:
        """Mean and standard error over :data:`FLOOR_EPISODES` uniform-random episodes (seed
        :data:`FLOOR_SEED`), computed once per configuration and process."""
        key = (type(self), self.n_agents, self.horizon, self.reward_mode, tuple(self._weights), self.params)
        key += (FLOOR_EPISODES, FLOOR_SEED)
        if key not in _FLOOR_CACHE:
            env = type(self)(
                self.n_agents,
                FLOOR_EPISODES,
                reward_mode=self.reward_mode,
                vision=self.vision,
                horizon=self.horizon,
                collision_weights=self._weights,
                integration=self.params.order,
            )
            rng = np.random.default_rng(FLOOR_SEED)
            env.reset(rng)
            total = np.zeros(FLOOR_EPISODES)
            for _ in range(self.horizon):
                actions = rng.integers(0, self.n_actions, size=(FLOOR_EPISODES, self.n_agents))
                total += env.step(actions).rewards.astype(np.float64).sum(axis=1)
            se = float(total.std(ddof=1) / np.sqrt(FLOOR_EPISODES))
            _FLOOR_CACHE[key] = FloorEstimate(float(total.mean()), se, FLOOR_EPISODES, FLOOR_SEED)
        return _FLOOR_CACHE[key]

    # ------------------------------------------------------------------ views of the current state
    @property
    def t(self) -> int:
        """Steps taken in the current episodes."""
        return self._t

    @property
    def agent_positions(self) -> np.ndarray:
        """``[B, N, 2]`` float64 copy of the agent positions."""
        return self._require()[0].copy()

    @property
    def agent_velocities(self) -> np.ndarray:
        """``[B, N, 2]`` float64 copy of the agent velocities."""
        return self._require()[1].copy()

    @property
    def landmark_positions(self) -> np.ndarray:
        """``[B, L, 2]`` float64 copy of the landmark positions."""
        return self._require()[2].copy()

    def _state(self) -> np.ndarray:
        pos, vel, landmarks = self._require()
        b = self.batch_size
        parts = (pos.reshape(b, -1), vel.reshape(b, -1), landmarks.reshape(b, -1))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _require(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._pos is None or self._vel is None or self._landmarks is None:
            raise RuntimeError("the environment has no state yet; call reset(rng) first")
        return self._pos, self._vel, self._landmarks


class SimpleSpread(MpeTask):
    """Simple spread: cover the ``N`` landmarks, avoid collisions (module docstring; ``L = N``)."""

    agent_size = 0.15
    default_collision_weight = 1.0

    def _n_landmarks(self) -> int:
        return self.n_agents

    def _n_draws(self) -> int:
        return 2 * (self.n_agents + self.n_landmarks)

    def _layout(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xy = (-1.0 + 2.0 * u).reshape(self.batch_size, -1, 2)  # agents first, then landmarks (mpe2)
        return xy[:, : self.n_agents], xy[:, self.n_agents :]

    def _rewards(self, pos: np.ndarray) -> np.ndarray:
        dist = np.sqrt(
            np.square(pos[:, :, None, :] - self._landmarks[:, None, :, :]).sum(axis=-1)
        )  # [B, N, L]
        collisions = self._collision_costs(pos)
        if self.reward_mode == "team":
            shared = -dist.min(axis=1).sum(axis=1)  # [B]
            return shared[:, None] - collisions
        return -matched_costs(dist) - collisions


class _Formation(MpeTask):
    """Line and circle control: Hungarian-matched distances to ``N`` targets (module docstring)."""

    agent_size = 0.03
    default_collision_weight = 0.0

    def targets(self) -> np.ndarray:
        """``[B, N, 2]`` float64 target positions for the current agent positions."""
        return self._targets(self._require()[0])

    def _targets(self, pos: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _rewards(self, pos: np.ndarray) -> np.ndarray:
        targets = self._targets(pos)
        dist = np.sqrt(np.square(pos[:, :, None, :] - targets[:, None, :, :]).sum(axis=-1))  # [B, N, N]
        matched = matched_costs(dist)  # [B, N]
        collisions = 0.5 * self._collision_costs(pos)
        if self.reward_mode == "team":
            team = -(matched.mean(axis=1) + collisions.sum(axis=1) / self.n_agents)
            rewards = np.repeat(team[:, None], self.n_agents, axis=1)
        else:
            rewards = -(matched + collisions)
        return np.clip(rewards, -REWARD_CLIP, REWARD_CLIP)


class LineControl(_Formation):
    """Line control: spread evenly on the segment from landmark 0 to landmark 1 (length 1.25)."""

    LENGTH = 1.25
    ROTATION_STEP = np.radians(5.0)

    def _n_landmarks(self) -> int:
        return 2

    def _n_draws(self) -> int:
        return 2 * self.n_agents + 3

    def _layout(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, n = self.batch_size, self.n_agents
        agents = (-1.0 + 2.0 * u[:, : 2 * n]).reshape(b, n, 2)
        first = -0.25 + 0.5 * u[:, 2 * n : 2 * n + 2]  # [B, 2]
        # Turn the random direction by 5° until landmark 1 is inside (−1, 1)² (at most a full turn;
        # the cumulative sum repeats mpe2's `theta += radians(5)` exactly).
        steps = np.full((b, 73), self.ROTATION_STEP)
        steps[:, 0] = 2.0 * np.pi * u[:, 2 * n + 2]
        thetas = np.cumsum(steps, axis=1)  # [B, 73]
        ends = first[:, None, :] + self.LENGTH * np.stack([np.cos(thetas), np.sin(thetas)], axis=-1)
        inside = np.all(np.abs(ends) < 1.0, axis=-1)  # [B, 73]
        if not inside.any(axis=1).all():  # impossible for landmark 0 in [−0.25, 0.25]²
            raise RuntimeError("no direction puts landmark 1 inside the arena")
        second = ends[np.arange(b), np.argmax(inside, axis=1)]
        return agents, np.stack([first, second], axis=1)

    def _on_start(self) -> None:
        first, second = self._landmarks[:, 0], self._landmarks[:, 1]
        fractions = np.arange(self.n_agents) / (self.n_agents - 1)  # [N]
        self._line = first[:, None, :] + fractions[None, :, None] * (second - first)[:, None, :]

    def _targets(self, pos: np.ndarray) -> np.ndarray:
        return self._line


class CircleControl(_Formation):
    """Circle control: spread evenly on the radius-0.5 circle about the landmark."""

    RADIUS = 0.5

    def _n_landmarks(self) -> int:
        return 1

    def _n_draws(self) -> int:
        return 2 * self.n_agents + 2

    def _layout(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, n = self.batch_size, self.n_agents
        agents = (-1.0 + 2.0 * u[:, : 2 * n]).reshape(b, n, 2)
        centre = (-0.25 + 0.5 * u[:, 2 * n :]).reshape(b, 1, 2)
        return agents, centre

    def _targets(self, pos: np.ndarray) -> np.ndarray:
        centre = self._landmarks[:, 0, :]  # [B, 2]
        rel = pos - centre[:, None, :]
        theta = np.arctan2(rel[..., 1], rel[..., 0])
        theta = np.where(theta < 0.0, theta + 2.0 * np.pi, theta)  # polar angle in [0, 2π)
        angles = theta.min(axis=1)[:, None] + np.arange(self.n_agents) * (2.0 * np.pi / self.n_agents)
        ring = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # [B, N, 2]
        return centre[:, None, :] + self.RADIUS * ring
