"""The random cooperative stochastic game of DPO Sec. 4.1 (decision 5 of ``papers/README.md``), batched.

``S`` = 100 states, ``N`` = 6 agents with ``A`` = 5 actions each (``J = A^N`` = 15 625 joint actions),
start state 0, ``horizon`` = 100 steps, no early end. For every state ``s`` and joint action ``a``:
rewards are i.i.d. uniform in ``[−5, 5]``; transitions are dense, ``p(s'|s, a) ∝ exp(u_{s'})`` with
``u ~ U(0, 4)`` i.i.d. over the ``S`` successors. Two reward modes: ``team`` (DPO's setting: every agent
receives the one reward ``R(s, a)``) and ``private`` (agent ``i`` receives its own ``R_i(s, a)``). The
collective return is the sum over agents of their rewards, so in ``team`` mode it is ``N`` times the
team return DPO plots.

No table is stored (dense, it would be ``S·J·S`` = 156 M entries, 625 MB in float32): every number is a
counter-based hash of ``(seed, s, a, column)``. Row ``r = s·J + a`` owns the counters
``r·(S + N) + c``: columns ``c < S`` are the transition uniforms, column ``S + i`` agent i's private
reward uniform (``team`` mode uses column ``S`` for everyone). The hash is SplitMix64's output function
applied to ``key + (counter + 1)·γ``, the key drawn from ``numpy.random.SeedSequence(seed)``: the
counter-th output of a SplitMix64 stream, vectorised over any set of counters in numpy, so a batch of
rows (or all 156 M entries, for the floor) is generated in a few array passes. A per-row numpy
``Philox`` generator would be as reproducible but needs one Python-level construction per row.

Choices, all in this module:
    * Joint action index ``a = Σ_i a_i · A^{N−1−i}`` (agent 0 most significant).
    * Global state ``[B, S]`` float32: one-hot of the current state (no time feature; the optimum is
      non-stationary only through the horizon). ``observations()`` gives every agent that state.
    * ``reset`` draws ``horizon`` uniforms per episode (batch order) from the given generator; step t
      samples the next state by inverse CDF with episode b's t-th uniform. Nothing is drawn in ``step``,
      so a batch equals ``B`` single-episode environments reset one after another from one generator.
    * Private reward parameter (``draw_private_params``): each agent's reward weight ``w_i`` (its reward
      is ``w_i R(s, a)`` in ``team`` mode, ``w_i R_i(s, a)`` in ``private`` mode), prior ``U(0.5, 1.5)``
      i.i.d.; default 1 (DPO's rules). Optimum and floor are computed for the weights given.
    * No positions (the game has no geometry); ``default_topology = "complete"``; no per-action
      cooperative act (``cooperative_action`` raises NotImplementedError).

Optimum (``optimal_collective_return``): finite-horizon backward induction, undiscounted,
``V_0 = 0``, ``V_k(s) = max_a [R(s, a) + Σ_{s'} p(s'|s, a) V_{k−1}(s')]``, with ``R`` the collective
reward. It is exact without generating all rows: since ``Σ_{s'} p V ≤ max V``, a joint action can only
win at ``s`` if ``R(s, a) + max V_{k−1} ≥ L(s)``, the best value among the rows already generated. Only
those candidate rows are generated (and kept), until no candidate is missing. ``R`` is a ``[S, J]``
table (12.5 MB) generated once.

Floor (``floor_collective_return``): the uniform-random joint policy's exact expected return,
``U_k(s) = mean_a R(s, a) + P̄(s) · U_{k−1}`` with ``P̄(s) = mean_a p(·|s, a)``; this pass generates
every transition row once (a few seconds for the default sizes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from confide.envs.base import FloorKind, Reset, StepResult, check_actions

if TYPE_CHECKING:
    from confide.topologies.schedule import TopologyKind

RewardMode = Literal["team", "private"]
REWARD_MODES: tuple[str, ...] = get_args(RewardMode)

REWARD_RANGE = (-5.0, 5.0)
"""Rewards are uniform in this interval."""
LOGIT_RANGE = 4.0
"""Transition weights are ``exp(u)``, ``u ~ U(0, LOGIT_RANGE)``."""
WEIGHT_PRIOR = (0.5, 1.5)
"""Bounds of the uniform prior of ``draw_private_params``."""

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def hashed_uniforms(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    """Uniforms in ``[0, 1)`` (float64, 53 bits), one per uint64 counter: SplitMix64 output ``counter``.

    Deterministic in ``(key, counter)``; arithmetic wraps modulo 2^64.
    """
    return _mix((counters.astype(np.uint64) + np.uint64(1)) * _GAMMA + key)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 ``z`` (overwritten), as 53-bit uniforms in ``[0, 1)``."""
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    z >>= np.uint64(11)
    uniforms = z.view(np.int64).astype(np.float64)  # < 2^53: exact, and int64 converts faster
    uniforms *= 2.0**-53
    return uniforms


def draw_private_params(rng: np.random.Generator, n_agents: int = 6) -> np.ndarray:
    """Draw each agent's private reward weight ``w_i ~ U(0.5, 1.5)`` i.i.d.: ``[N]`` float64."""
    return rng.uniform(*WEIGHT_PRIOR, size=n_agents)


class RandomStochasticGame:
    """A batch of ``batch_size`` episodes of a seeded random cooperative stochastic game (a ``VecEnv``).

    Args:
        n_agents: ``N`` (≥ 1; DPO uses 6).
        batch_size: episodes ``B`` stepped at once (≥ 1).
        seed: the game's seed: it fixes every reward and transition (not the episodes' randomness,
            which comes from the generator passed to ``reset``).
        reward_mode: ``"team"`` (default, DPO) or ``"private"``.
        n_states: ``S`` (≥ 1; DPO uses 100).
        n_actions: ``A`` per agent (≥ 1; DPO uses 5).
        horizon: steps per episode (≥ 1; 100).
        reward_weights: ``[N]`` private weights ``w_i`` (default 1 each; see ``draw_private_params``).

    Shapes: state ``[B, S]`` float32 one-hot, rewards ``[B, N]`` float32, terminated/truncated ``[B]``
    bool, positions None, actions ``[B, N]`` integer in ``[0, A)``.
    """

    state_bounds: tuple[float, float] = (0.0, 1.0)
    default_topology: TopologyKind = "complete"
    one_hot_state: bool = True  # networks look their first layer up (``StackedMLP(one_hot_input=True)``)

    def __init__(
        self,
        n_agents: int = 6,
        batch_size: int = 1,
        *,
        seed: int = 0,
        reward_mode: RewardMode = "team",
        n_states: int = 100,
        n_actions: int = 5,
        horizon: int = 100,
        reward_weights: np.ndarray | list[float] | None = None,
    ):
        for name, value in (("n_agents", n_agents), ("batch_size", batch_size), ("n_states", n_states)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if n_actions < 1 or horizon < 1:
            raise ValueError(f"n_actions and horizon must be >= 1, got {n_actions} and {horizon}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"unknown reward_mode {reward_mode!r}; known modes: {', '.join(REWARD_MODES)}")
        if n_actions**n_agents * n_states * (n_states + n_agents) >= 2**63:
            raise ValueError("the game is too large for 64-bit counters")
        self.n_agents, self.batch_size, self.horizon = int(n_agents), int(batch_size), int(horizon)
        self.n_states, self.n_actions, self.seed = int(n_states), int(n_actions), int(seed)
        self.reward_mode: RewardMode = reward_mode
        self.state_dim = self.n_states
        self.n_joint = self.n_actions**self.n_agents
        weights = np.ones(self.n_agents) if reward_weights is None else reward_weights
        weights = np.array(weights, dtype=np.float64)
        if weights.shape != (self.n_agents,) or not np.all(np.isfinite(weights)):
            raise ValueError(f"reward_weights must be {self.n_agents} finite numbers, got {weights!r}")
        self.reward_weights = weights
        self._key = np.random.SeedSequence(self.seed).generate_state(1, dtype=np.uint64)[0]
        self._stride = self.n_states + self.n_agents
        self._radix = self.n_actions ** np.arange(self.n_agents - 1, -1, -1, dtype=np.int64)
        self._eye = np.eye(self.n_states, dtype=np.float32)
        self._s: np.ndarray | None = None  # [B] int64 current states
        self._u: np.ndarray | None = None  # [B, T] float64 uniforms for the transitions
        self._t = 0
        self._optimum: tuple[float, np.ndarray] | None = None
        self._floor: float | None = None
        self._collective: np.ndarray | None = None

    # ------------------------------------------------------------------ the seeded tables, row by row
    def joint_index(self, actions: np.ndarray) -> np.ndarray:
        """``[...]`` int64 joint index ``Σ_i a_i A^{N−1−i}`` of actions ``[..., N]``."""
        return np.asarray(actions, dtype=np.int64) @ self._radix

    def _rows(self, states: np.ndarray, joint: np.ndarray) -> np.ndarray:
        return np.asarray(states, dtype=np.int64) * self.n_joint + np.asarray(joint, dtype=np.int64)

    def _row_uniforms(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``[K, C]`` ``hashed_uniforms(key, rows[:, None]·(S + N) + columns)`` for rows ``[K]``, columns ``[C]``.

        Uses ``key + (r·(S+N) + c + 1)·γ = (key + r·(S+N)·γ) + (c + 1)·γ`` (mod 2^64): one broadcast add.
        """
        base = np.asarray(rows, dtype=np.uint64) * np.uint64(self._stride) * _GAMMA + self._key
        return _mix(base[:, None] + (np.asarray(columns, dtype=np.uint64) + np.uint64(1)) * _GAMMA)

    def _transition_weights(self, rows: np.ndarray) -> np.ndarray:
        """``[K, S]`` float64 unnormalised ``exp(u)`` of rows ``[K]``."""
        u = self._row_uniforms(rows, np.arange(self.n_states))
        u *= LOGIT_RANGE
        return np.exp(u, out=u)

    def transition_probs(self, states: np.ndarray, joint: np.ndarray) -> np.ndarray:
        """``[K, S]`` float64 ``p(·|s, a)`` for states ``[K]`` and joint indices ``[K]``."""
        weights = self._transition_weights(self._rows(states, joint).ravel())
        return weights / weights.sum(axis=1, keepdims=True)

    def rewards_of(self, states: np.ndarray, joint: np.ndarray) -> np.ndarray:
        """``[K, N]`` float64 individual rewards (weights applied) for states ``[K]``, joint indices ``[K]``."""
        rows = self._rows(states, joint).ravel()
        team = self.reward_mode == "team"
        columns = self.n_states + (
            np.zeros(self.n_agents, dtype=np.int64) if team else np.arange(self.n_agents)
        )
        low, high = REWARD_RANGE
        return (low + (high - low) * self._row_uniforms(rows, columns)) * self.reward_weights

    def collective_rewards(self) -> np.ndarray:
        """``[S, J]`` float64 collective reward ``Σ_i r_i(s, a)`` (generated once, 12.5 MB by default)."""
        if self._collective is None:
            table = np.empty((self.n_states, self.n_joint))
            joint = np.arange(self.n_joint)
            for s in range(self.n_states):
                table[s] = self.rewards_of(np.full(self.n_joint, s), joint).sum(axis=1)
            self._collective = table
        return self._collective

    # ------------------------------------------------------------------ episode dynamics
    def reset(self, rng: np.random.Generator) -> Reset:
        """Start every episode in state 0; draw its ``horizon`` transition uniforms from ``rng``."""
        self._u = rng.random((self.batch_size, self.horizon))
        self._s = np.zeros(self.batch_size, dtype=np.int64)
        self._t = 0
        return Reset(state=self._state(), positions=None)

    def step(self, actions: np.ndarray) -> StepResult:
        """Pay ``r_i(s, a)`` and move to ``s' ~ p(·|s, a)`` (inverse CDF on the episode's t-th uniform)."""
        if self._s is None:
            raise RuntimeError("step() called before reset(); call reset(rng) first")
        if self._t >= self.horizon:
            raise RuntimeError(f"episode ended at step {self.horizon}; call reset(rng) before stepping again")
        actions = check_actions(actions, self.batch_size, self.n_agents, self.n_actions)
        joint = self.joint_index(actions)
        rewards = self.rewards_of(self._s, joint)
        cdf = np.cumsum(self._transition_weights(self._rows(self._s, joint)), axis=1)
        threshold = self._u[:, self._t] * cdf[:, -1]
        self._s = np.minimum((cdf <= threshold[:, None]).sum(axis=1), self.n_states - 1)
        self._t += 1
        return StepResult(
            state=self._state(),
            rewards=rewards.astype(np.float32),
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=np.full(self.batch_size, self._t >= self.horizon, dtype=bool),
            positions=None,
        )

    def cooperative_action(self) -> np.ndarray:
        """The random game has no per-action cooperative act."""
        raise NotImplementedError("the random stochastic game defines no per-agent cooperative action")

    # ------------------------------------------------------------------ returns (decision 5, 14)
    def optimal_collective_return(self) -> float:
        """``V_T(0)``: the exact finite-horizon optimum of the collective return (cached; see module)."""
        return self._solve()[0]

    def optimal_policy(self) -> np.ndarray:
        """``[T, S]`` int64: an optimal joint action index at step ``t`` (from the start) in state ``s``."""
        return self._solve()[1]

    def floor_collective_return(self) -> tuple[float, FloorKind]:
        """The uniform-random joint policy's exact expected collective return from state 0 (cached)."""
        if self._floor is None:
            mean_reward = self.collective_rewards().mean(axis=1)  # [S]
            mean_next = np.empty((self.n_states, self.n_states))
            joint = np.arange(self.n_joint)
            for s in range(self.n_states):
                weights = self._transition_weights(self._rows(np.full(self.n_joint, s), joint))  # [J, S]
                mean_next[s] = (1.0 / weights.sum(axis=1)) @ weights / self.n_joint
            values = np.zeros(self.n_states)
            for _ in range(self.horizon):
                values = mean_reward + mean_next @ values
            self._floor = float(values[0])
        return self._floor, "uniform_random"

    def _solve(self) -> tuple[float, np.ndarray]:
        """Backward induction generating only the candidate rows (exactness argument in the module)."""
        if self._optimum is not None:
            return self._optimum
        reward = self.collective_rewards()  # [S, J]
        n_states = self.n_states
        known = np.zeros(reward.shape, dtype=bool)
        row_state = np.argmax(reward, axis=1)  # start with each state's best immediate reward
        row_state, row_joint = np.arange(n_states), row_state
        known[row_state, row_joint] = True
        probs = self.transition_probs(row_state, row_joint)  # [M, S]
        values = np.zeros(n_states)
        policy = np.empty((self.horizon, n_states), dtype=np.int64)
        for k in range(self.horizon):
            ceiling = values.max()
            while True:
                q = reward[row_state, row_joint] + probs @ values  # [M]
                order = np.lexsort((-q, row_state))  # per state, best first
                first = order[np.r_[True, row_state[order][1:] != row_state[order][:-1]]]
                best, best_joint = q[first], row_joint[first]
                tolerance = 1e-9 * (1.0 + np.abs(best))
                missing = (reward + ceiling >= (best - tolerance)[:, None]) & ~known
                if not missing.any():
                    break
                new_state, new_joint = np.nonzero(missing)
                known[new_state, new_joint] = True
                row_state = np.concatenate([row_state, new_state])
                row_joint = np.concatenate([row_joint, new_joint])
                probs = np.concatenate([probs, self.transition_probs(new_state, new_joint)])
            values = best
            policy[self.horizon - 1 - k] = best_joint
        self._optimum = (float(values[0]), policy)
        return self._optimum

    # ------------------------------------------------------------------ views of the current state
    @property
    def t(self) -> int:
        """Steps taken in the current episodes."""
        return self._t

    @property
    def states(self) -> np.ndarray:
        """``[B]`` int64 copy of the current states."""
        if self._s is None:
            raise RuntimeError("the environment has no state yet; call reset(rng) first")
        return self._s.copy()

    def observations(self) -> np.ndarray:
        """``[B, N, S]`` float32: every agent observes the global state."""
        state = self._state()
        return np.broadcast_to(state[:, None, :], (self.batch_size, self.n_agents, self.n_states)).copy()

    def _state(self) -> np.ndarray:
        return self._eye[self._s]
