"""C. Navigation (decision 4): hand-computed optima, rewards, exact floor, errors, determinism."""

from __future__ import annotations

import itertools
import warnings
from functools import partial

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from confide.envs.navigation import (
    _DIST,
    _NEXT,
    DOWN,
    LEFT,
    RIGHT,
    STAY,
    UP,
    CooperativeNavigation,
    NavigationLayout,
    _expected_optimum,
    _optimal_values,
    draw_private_params,
)
from confide.envs.pettingzoo_view import ParallelEpisode

COLUMNS = NavigationLayout(starts=((0, 0), (0, 2), (0, 4)), landmarks=((4, 0), (4, 2), (4, 4)))
BLOCKED = NavigationLayout(starts=((0, 1), (0, 0), (4, 4)), landmarks=((0, 2), (0, 3), (4, 4)))


# ---------------------------------------------------------------- optimum on fixed layouts (by hand)
def test_optimum_parallel_columns_by_hand():
    # Each agent walks 4 cells down its own column; after-move distances 3, 2, 1, 0: −6/8 each.
    assert CooperativeNavigation(3, 1, layout=COLUMNS).optimal_collective_return() == -2.25
    weighted = CooperativeNavigation(3, 1, layout=COLUMNS, distance_weights=[0.5, 1.0, 2.0])
    assert weighted.optimal_collective_return() == -(0.5 + 1.0 + 2.0) * 6 / 8


def test_optimum_when_one_agent_must_step_aside_by_hand():
    # Agent 1's only shortest path runs along row 0 through agent 0's landmark (0, 2), reached at t = 2.
    # Alone: agent 0 costs 0 (arrives at t = 1), agent 1 costs (2 + 1 + 0)/8, agent 2 sits on its landmark.
    # Best: agent 0 steps down at t = 2 and back at t = 3 (1/8) rather than agent 1 waiting (3/8),
    # detouring (5/8) or colliding (2). Total −3/8 − 1/8.
    env = CooperativeNavigation(3, 1, layout=BLOCKED)
    assert env.optimal_collective_return() == -0.5
    plan = [[RIGHT, RIGHT, STAY], [DOWN, RIGHT, STAY], [UP, RIGHT, STAY]] + [[STAY] * 3] * 97
    env.reset(np.random.default_rng(0))
    total = sum(float(env.step(np.array([a])).rewards.astype(np.float64).sum()) for a in plan)
    assert total == -0.5


def reference_values(landmarks: np.ndarray, weights: np.ndarray, horizon: int) -> np.ndarray:
    """Backward induction over explicit joint actions (``5^N`` per state), for ``[L, N]`` landmark tuples."""
    n_tuples, n = landmarks.shape
    joint_cells = np.array(list(itertools.product(range(25), repeat=n)))  # [25^N, N]
    joint_actions = np.array(list(itertools.product(range(5), repeat=n)))  # [5^N, N]
    nxt = _NEXT[joint_cells[:, None, :], joint_actions[None, :, :]]  # [25^N, 5^N, N]
    flat_next = (nxt * 25 ** np.arange(n - 1, -1, -1)).sum(axis=-1)
    reward = np.zeros((n_tuples, len(joint_cells)))
    for i in range(n):
        reward -= weights[i] * _DIST[joint_cells[:, i]][:, landmarks[:, i]].T / 8
        shared = np.zeros(len(joint_cells), dtype=bool)
        for j in range(n):
            shared |= (j != i) & (joint_cells[:, i] == joint_cells[:, j])
        reward -= shared
    values = np.zeros_like(reward)
    for _ in range(horizon):
        values = (reward + values)[:, flat_next].max(axis=-1)
    return values.reshape((n_tuples,) + (25,) * n)


def test_separable_backward_induction_matches_explicit_joint_actions():
    rng = np.random.default_rng(0)
    landmarks = np.stack([rng.choice(25, size=3, replace=False) for _ in range(2)])
    weights = np.array([0.7, 1.0, 1.3])
    for horizon in (1, 4, 12):
        np.testing.assert_allclose(
            _optimal_values(landmarks, weights, horizon),
            reference_values(landmarks, weights, horizon),
            atol=1e-12,
        )


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.6, 1.4)])
def test_expected_optimum_matches_averaging_over_every_layout(weights):
    tuples = np.array(list(itertools.permutations(range(25), 2)))  # every ordered distinct landmark pair
    values = reference_values(tuples, np.array(weights), horizon=10)  # [600, 25, 25]
    distinct = ~np.eye(25, dtype=bool)
    expected = values[:, distinct].mean()
    assert _expected_optimum(weights, 10, 2) == pytest.approx(expected, abs=1e-12)


def test_random_layout_optimum_is_between_collision_free_bound_and_floor():
    env = CooperativeNavigation(3, 1)
    # Ignoring collisions, an agent d cells away pays (d−1 + … + 0)/8 = d(d−1)/16; d is the distance
    # between two independent uniform cells (start and own landmark are independent and marginally uniform).
    bound = -3 * (_DIST * (_DIST - 1) / 16).mean()
    optimum = env.optimal_collective_return()
    assert env.floor_collective_return()[0] < optimum <= bound
    assert optimum == pytest.approx(-1.8678904851921865, abs=1e-9)  # regression value, 3 agents, 100 steps


# ---------------------------------------------------------------- floor (exact vs Monte Carlo)
@pytest.mark.parametrize("kwargs", [{}, {"layout": BLOCKED, "distance_weights": [0.5, 1.5, 1.0]}])
def test_uniform_random_floor_matches_monte_carlo(kwargs):
    env = CooperativeNavigation(3, 2000, **kwargs)
    floor, kind = env.floor_collective_return()
    assert kind == "uniform_random"
    rng = np.random.default_rng(3)
    env.reset(rng)
    total = np.zeros(env.batch_size)
    for _ in range(env.horizon):
        total += env.step(rng.integers(0, 5, size=(env.batch_size, 3))).rewards.astype(np.float64).sum(axis=1)
    standard_error = total.std() / np.sqrt(env.batch_size)
    assert abs(total.mean() - floor) < 4 * standard_error


# ---------------------------------------------------------------- rewards on crafted states
def test_rewards_collisions_and_swaps():
    env = CooperativeNavigation(3, 2)
    # episode 0: agents 0 and 1 move into the same cell; episode 1: agents 0 and 1 swap cells
    env.reset_to(np.array([[0, 2, 24], [0, 1, 24]]), np.array([[4, 20, 24], [1, 0, 20]]))
    result = env.step(np.array([[RIGHT, LEFT, STAY], [RIGHT, LEFT, LEFT]]))
    np.testing.assert_array_equal(env.agent_cells, [[1, 1, 24], [1, 0, 23]])
    np.testing.assert_allclose(result.rewards, [[-3 / 8 - 1, -5 / 8 - 1, 0], [0, 0, -3 / 8]], atol=1e-7)
    result = env.step(np.array([[UP, LEFT, DOWN], [STAY, STAY, STAY]]))  # walls clip
    np.testing.assert_array_equal(env.agent_cells, [[1, 0, 24], [1, 0, 23]])
    np.testing.assert_allclose(result.positions[0], [[0, 0.25], [0, 0], [1, 1]])


def test_weights_scale_only_the_owners_distance_term():
    env = CooperativeNavigation(2, 1, distance_weights=[2.0, 0.5])
    env.reset_to(np.array([[0, 0]]), np.array([[24, 24]]))
    result = env.step(np.array([[RIGHT, RIGHT]]))  # both land on cell 1 (distance 7) and collide
    np.testing.assert_allclose(result.rewards, [[-2 * 7 / 8 - 1, -0.5 * 7 / 8 - 1]], atol=1e-6)
    draws = draw_private_params(np.random.default_rng(0), 3)
    assert draws.shape == (3,) and np.all((draws >= 0.5) & (draws <= 1.5))


def test_state_observations_and_topology():
    env = CooperativeNavigation(3, 1)
    state = env.reset_to(np.array([[0, 12, 24]]), np.array([[6, 7, 8]])).state
    assert state.shape == (1, 150) and state.dtype == np.float32 and state.sum() == 6
    assert state[0].reshape(6, 25).argmax(axis=1).tolist() == [0, 12, 24, 6, 7, 8]
    obs = env.observations()
    assert obs.shape == (1, 3, env.obs_dim) == (1, 3, 31) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0, 1, 25:], np.array([-1, 0, 2, 2, -2, -2]) / 4)
    assert env.default_topology == "line"
    with pytest.raises(NotImplementedError, match="IMR does not apply"):
        env.cooperative_action()


def test_reset_draws_distinct_starts_and_landmarks():
    env = CooperativeNavigation(3, 300)
    env.reset(np.random.default_rng(2))
    assert all(len(set(row)) == 3 for row in env.agent_cells.tolist())
    assert all(len(set(row)) == 3 for row in env.landmark_cells.tolist())


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.array([[0, 5, 0]]), r"agent 1: action 5 out of range \[0, 5\)"),
        (np.array([[-2, 0, 0]]), r"agent 0: action -2 out of range \[0, 5\)"),
        (np.array([[0, 1]]), r"shape \[B, N\] = \(1, 3\)"),
        (np.array([[True, False, True]]), "must be integers"),
    ],
)
def test_bad_actions_raise(actions, message):
    env = CooperativeNavigation(3, 1)
    env.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        env.step(actions)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_agents": 4}, "n_agents 2 or 3"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"horizon": 0}, "horizon must be >= 1"),
        ({"distance_weights": [1.0]}, "distance_weights must be 3 finite numbers"),
        ({"n_agents": 2, "layout": COLUMNS}, "layout has 3 agents, expected 2"),
    ],
)
def test_constructor_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CooperativeNavigation(**kwargs)
    with pytest.raises(ValueError, match="starts must be"):
        NavigationLayout(starts=((0, 5),), landmarks=((0, 0),))


# ---------------------------------------------------------------- determinism and the PettingZoo view
def test_batch_equals_single_episodes_reset_in_turn():
    """Episode b of a batch reset from ``rng`` is the b-th batch-1 env reset in turn from the same ``rng``."""
    batch, horizon = 4, 30
    batched = CooperativeNavigation(3, batch, horizon=horizon)
    actions = np.random.default_rng(0).integers(0, 5, size=(horizon, batch, 3))
    first = batched.reset(np.random.default_rng(9)).state
    steps = [batched.step(a) for a in actions]
    single, rng = CooperativeNavigation(3, 1, horizon=horizon), np.random.default_rng(9)
    for b in range(batch):
        np.testing.assert_array_equal(single.reset(rng).state[0], first[b])
        for t in range(horizon):
            result = single.step(actions[t, b : b + 1])
            np.testing.assert_array_equal(result.state[0], steps[t].state[b])
            np.testing.assert_array_equal(result.rewards[0], steps[t].rewards[b])
            np.testing.assert_array_equal(result.positions[0], steps[t].positions[b])
    other = CooperativeNavigation(3, batch).reset(np.random.default_rng(10)).state
    assert not np.array_equal(other, first)


def test_view_replays_the_batch_one_env():
    view = ParallelEpisode(partial(CooperativeNavigation, 3, horizon=20))
    env = CooperativeNavigation(3, 1, horizon=20)
    actions = np.random.default_rng(4).integers(0, 5, size=(20, 3))
    obs, _ = view.reset(seed=5)
    np.testing.assert_array_equal(obs["agent_1"], env.reset(np.random.default_rng(5)).state[0])
    for t in range(20):
        obs, rewards, _, truncs, _ = view.step({f"agent_{i}": int(actions[t, i]) for i in range(3)})
        result = env.step(actions[t][None])
        np.testing.assert_array_equal(obs["agent_0"], result.state[0])
        assert [rewards[f"agent_{i}"] for i in range(3)] == result.rewards[0].tolist()
    assert all(truncs.values()) and view.agents == []


@pytest.mark.parametrize("layout", [None, COLUMNS])
def test_parallel_api_and_seed(layout):
    factory = partial(CooperativeNavigation, 3, layout=layout)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        parallel_api_test(ParallelEpisode(factory), num_cycles=100)
    parallel_seed_test(lambda: ParallelEpisode(factory), num_cycles=100)
