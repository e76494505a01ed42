"""The random cooperative stochastic game (decision 5): seeded rows, exact optimum and floor, dynamics."""

from __future__ import annotations

import itertools
import warnings
from functools import partial

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from confide.envs.pettingzoo_view import ParallelEpisode
from confide.envs.stochastic_game import RandomStochasticGame, draw_private_params, hashed_uniforms


def dense_tables(env: RandomStochasticGame) -> tuple[np.ndarray, np.ndarray]:
    """``P [S, J, S]`` and collective ``R [S, J]`` of a small game, row by row through the public API."""
    s, j = np.meshgrid(np.arange(env.n_states), np.arange(env.n_joint), indexing="ij")
    probs = env.transition_probs(s.ravel(), j.ravel()).reshape(env.n_states, env.n_joint, env.n_states)
    reward = env.rewards_of(s.ravel(), j.ravel()).sum(axis=1).reshape(env.n_states, env.n_joint)
    return probs, reward


def dense_backward_induction(probs: np.ndarray, reward: np.ndarray, horizon: int) -> float:
    values = np.zeros(probs.shape[0])
    for _ in range(horizon):
        values = (reward + probs @ values).max(axis=1)
    return float(values[0])


def brute_force_optimum(probs: np.ndarray, reward: np.ndarray, horizon: int) -> float:
    """Exact return of every deterministic non-stationary Markov policy from state 0; the best of them."""
    n_states, n_joint = reward.shape
    per_step = np.array(list(itertools.product(range(n_joint), repeat=n_states)))  # [J^S, S]
    policies = np.array(list(itertools.product(range(len(per_step)), repeat=horizon)))  # [(J^S)^T, T]
    dist = np.zeros((len(policies), n_states))
    dist[:, 0] = 1.0
    total = np.zeros(len(policies))
    for t in range(horizon):
        choice = per_step[policies[:, t]]  # [K, S]: joint action in each state
        total += (dist * reward[np.arange(n_states), choice]).sum(axis=1)
        dist = np.einsum("ks,kst->kt", dist, probs[np.arange(n_states), choice])
    return float(total.max())


# ---------------------------------------------------------------- exact optimum
def greedy_everywhere(env: RandomStochasticGame) -> bool:
    return bool(np.all(env.optimal_policy() == env.collective_rewards().argmax(axis=1)))


# Seeds chosen so that the optimal policy is not the myopic one: the lookahead matters.
@pytest.mark.parametrize(
    ("mode", "seed", "weights"),
    [("team", 4, None), ("private", 8, None), ("private", 29, [0.5, 1.5]), ("team", 16, [2.0, 0.25])],
)
def test_optimum_matches_brute_force_on_a_tiny_game(mode, seed, weights):
    env = RandomStochasticGame(
        2, 1, seed=seed, reward_mode=mode, n_states=3, n_actions=2, horizon=3, reward_weights=weights
    )
    probs, reward = dense_tables(env)
    assert env.optimal_collective_return() == pytest.approx(brute_force_optimum(probs, reward, 3), abs=1e-12)
    assert not greedy_everywhere(env)


@pytest.mark.parametrize(("mode", "seed"), [("team", 5), ("private", 0), ("private", 6)])
def test_pruned_backward_induction_matches_dense_tables(mode, seed):
    env = RandomStochasticGame(3, 1, seed=seed, reward_mode=mode, n_states=20, n_actions=4, horizon=15)
    assert not greedy_everywhere(env)
    probs, reward = dense_tables(env)
    assert env.optimal_collective_return() == pytest.approx(
        dense_backward_induction(probs, reward, 15), abs=1e-9
    )
    values = np.zeros(20)  # the stored policy attains the optimum
    policy = env.optimal_policy()
    for t in range(14, -1, -1):
        values = reward[np.arange(20), policy[t]] + probs[np.arange(20), policy[t]] @ values
    assert values[0] == pytest.approx(env.optimal_collective_return(), abs=1e-9)


def test_uniform_floor_matches_dense_tables():
    env = RandomStochasticGame(3, 1, seed=4, reward_mode="private", n_states=12, n_actions=3, horizon=9)
    probs, reward = dense_tables(env)
    values = np.zeros(12)
    for _ in range(9):
        values = reward.mean(axis=1) + probs.mean(axis=1) @ values
    assert env.floor_collective_return() == (pytest.approx(values[0], abs=1e-9), "uniform_random")


def test_full_size_optimal_policy_scores_the_optimum():
    env = RandomStochasticGame(6, 256, seed=0)
    optimum = env.optimal_collective_return()
    assert optimum == pytest.approx(2999.6491344311676, abs=1e-6)  # regression value: seed 0, team mode
    policy = env.optimal_policy()
    env.reset(np.random.default_rng(0))
    total = np.zeros(env.batch_size)
    for t in range(env.horizon):
        actions = np.stack(np.unravel_index(policy[t, env.states], (5,) * 6), axis=1)
        total += env.step(actions).rewards.astype(np.float64).sum(axis=1)
    assert abs(total.mean() - optimum) < 4 * total.std() / np.sqrt(env.batch_size) + 1e-3


# ---------------------------------------------------------------- the seeded rows
def test_rows_are_deterministic_given_the_seed_and_sum_to_one():
    a, b, c = (RandomStochasticGame(6, 1, seed=s) for s in (7, 7, 8))
    states, joint = np.array([0, 99, 42, 0]), np.array([0, 15624, 777, 0])
    pa = a.transition_probs(states, joint)
    assert pa.shape == (4, 100)
    np.testing.assert_array_equal(pa, b.transition_probs(states, joint))
    np.testing.assert_array_equal(pa[0], pa[3])
    np.testing.assert_array_equal(pa[1:2], a.transition_probs(states[1:2], joint[1:2]))  # batch-independent
    assert not np.array_equal(pa, c.transition_probs(states, joint))
    np.testing.assert_allclose(pa.sum(axis=1), 1.0, rtol=1e-12)
    ratio = pa.max(axis=1) / pa.min(axis=1)
    assert np.all((ratio > 1) & (ratio <= np.exp(4.0)))
    rewards = a.rewards_of(states, joint)
    assert rewards.shape == (4, 6) and np.all(np.abs(rewards) <= 5)
    assert np.all(rewards == rewards[:, :1])  # team mode: one reward for all
    private = RandomStochasticGame(6, 1, seed=7, reward_mode="private").rewards_of(states, joint)
    assert len(np.unique(private[1])) == 6


def test_rows_are_the_documented_hash_of_their_counters():
    env = RandomStochasticGame(6, 1, seed=11, reward_mode="private")
    state, joint = 17, 4242
    row = state * env.n_joint + joint
    counters = row * (env.n_states + env.n_agents) + np.arange(env.n_states + env.n_agents, dtype=np.uint64)
    key = np.random.SeedSequence(11).generate_state(1, dtype=np.uint64)[0]
    u = hashed_uniforms(key, counters)
    weights = np.exp(4 * u[:100])
    np.testing.assert_allclose(env.transition_probs([state], [joint])[0], weights / weights.sum(), rtol=1e-14)
    np.testing.assert_allclose(env.rewards_of([state], [joint])[0], -5 + 10 * u[100:], rtol=1e-14)


def test_hashed_uniforms_look_uniform():
    u = hashed_uniforms(np.uint64(12345), np.arange(200_000, dtype=np.uint64))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.001
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


def test_joint_index_and_private_params():
    env = RandomStochasticGame(6, 1)
    assert env.joint_index(np.array([0, 0, 0, 0, 0, 1])) == 1
    assert env.joint_index(np.array([[1, 0, 0, 0, 0, 0], [4, 4, 4, 4, 4, 4]])).tolist() == [3125, 15624]
    draws = draw_private_params(np.random.default_rng(0), 6)
    assert draws.shape == (6,) and np.all((draws >= 0.5) & (draws <= 1.5))
    weighted = RandomStochasticGame(6, 1, reward_mode="private", reward_weights=draws)
    plain = RandomStochasticGame(6, 1, reward_mode="private")
    s, j = np.array([5]), np.array([99])
    np.testing.assert_allclose(weighted.rewards_of(s, j), plain.rewards_of(s, j) * draws)


# ---------------------------------------------------------------- dynamics
def test_step_pays_the_row_reward_and_samples_the_row():
    env = RandomStochasticGame(6, 20_000, seed=1, reward_mode="private")
    state = env.reset(np.random.default_rng(0)).state
    assert state.shape == (20_000, 100) and state.dtype == np.float32 and np.all(state[:, 0] == 1)
    actions = np.tile([1, 2, 3, 4, 0, 1], (20_000, 1))
    joint = env.joint_index(actions[:1])
    result = env.step(actions)
    np.testing.assert_array_equal(
        result.rewards, np.repeat(env.rewards_of([0], joint), 20_000, 0).astype(np.float32)
    )
    counts = np.bincount(env.states, minlength=100)
    p = env.transition_probs([0], joint)[0]
    assert np.all(np.abs(counts - 20_000 * p) < 5 * np.sqrt(20_000 * p * (1 - p)) + 1)
    np.testing.assert_array_equal(result.state.argmax(axis=1), env.states)
    assert result.positions is None and not result.terminated.any() and not result.truncated.any()
    assert env.observations().shape == (20_000, 6, 100)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.array([[0, 0, 0, 0, 0, 5]]), r"agent 5: action 5 out of range \[0, 5\)"),
        (np.array([[0, -1, 0, 0, 0, 0]]), r"agent 1: action -1 out of range \[0, 5\)"),
        (np.zeros((1, 5), dtype=np.int64), r"shape \[B, N\] = \(1, 6\)"),
        (np.zeros((1, 6)), "must be integers"),
    ],
)
def test_bad_actions_raise(actions, message):
    env = RandomStochasticGame(6, 1)
    env.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        env.step(actions)


def test_lifecycle_and_constructor_errors():
    env = RandomStochasticGame(2, 1, n_states=3, n_actions=2, horizon=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros((1, 2), dtype=np.int64))
    env.reset(np.random.default_rng(0))
    assert not env.step(np.zeros((1, 2), dtype=np.int64)).truncated.any()
    assert env.step(np.zeros((1, 2), dtype=np.int64)).truncated.all()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(NotImplementedError):
        env.cooperative_action()
    with pytest.raises(ValueError, match="reward_mode 'shared'; known modes: team, private"):
        RandomStochasticGame(2, 1, reward_mode="shared")
    with pytest.raises(ValueError, match="reward_weights must be 2 finite numbers"):
        RandomStochasticGame(2, 1, reward_weights=[1.0, np.nan])


def test_batch_equals_single_episodes_reset_in_turn():
    """Episode b of a batch reset from ``rng`` is the b-th batch-1 env reset in turn from the same ``rng``."""
    batch, horizon = 4, 25
    make = partial(RandomStochasticGame, 6, seed=2, reward_mode="private", horizon=horizon)
    batched = make(batch_size=batch)
    actions = np.random.default_rng(0).integers(0, 5, size=(horizon, batch, 6))
    batched.reset(np.random.default_rng(3))
    steps = [batched.step(a) for a in actions]
    single, rng = make(batch_size=1), np.random.default_rng(3)
    for b in range(batch):
        single.reset(rng)
        for t in range(horizon):
            result = single.step(actions[t, b : b + 1])
            np.testing.assert_array_equal(result.state[0], steps[t].state[b])
            np.testing.assert_array_equal(result.rewards[0], steps[t].rewards[b])
    assert len({tuple(s.state.argmax(axis=1)) for s in steps}) > 1  # the episodes move


def test_view_replays_the_batch_one_env_and_passes_pettingzoo_checks():
    factory = partial(RandomStochasticGame, 6, seed=5, horizon=20)
    view, env = ParallelEpisode(factory), factory(batch_size=1)
    actions = np.random.default_rng(6).integers(0, 5, size=(20, 6))
    obs, _ = view.reset(seed=8)
    np.testing.assert_array_equal(obs["agent_0"], env.reset(np.random.default_rng(8)).state[0])
    for t in range(20):
        obs, rewards, _, truncs, _ = view.step({f"agent_{i}": int(actions[t, i]) for i in range(6)})
        result = env.step(actions[t][None])
        np.testing.assert_array_equal(obs["agent_5"], result.state[0])
        assert [rewards[f"agent_{i}"] for i in range(6)] == result.rewards[0].tolist()
    assert all(truncs.values()) and view.agents == []
    full = partial(RandomStochasticGame, 6, reward_mode="private")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        parallel_api_test(ParallelEpisode(full), num_cycles=100)
    parallel_seed_test(lambda: ParallelEpisode(full), num_cycles=100)
