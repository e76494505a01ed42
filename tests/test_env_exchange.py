"""Exchange (decision 2): the golden totals 6 and −9, opening rules, contests, errors, determinism."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from confide.envs.exchange import DOWN, LEFT, OPEN, RIGHT, STAY, UP, Exchange, draw_private_params
from confide.envs.pettingzoo_view import ParallelEpisode


def rollout_return(env: Exchange, policy, seed: int = 0) -> np.ndarray:
    """Collective return per episode ``[B]`` (float64 sums of the float32 rewards)."""
    env.reset(np.random.default_rng(seed))
    total = np.zeros(env.batch_size)
    for _ in range(env.horizon):
        result = env.step(policy(env))
        total += result.rewards.astype(np.float64).sum(axis=1)
    assert result.truncated.all() and not result.terminated.any()
    return total


def open_for_next(env: Exchange) -> np.ndarray:
    """Agent i serves box i+1 (mod N): open when eligible for it, else walk to it, stay once it is open."""
    agents, boxes = env.agent_cells, env.box_cells
    n = env.n_agents
    mine = (np.arange(n) + 1) % n
    goal = boxes[:, mine]  # [B, N, 2]
    d_row, d_col = (goal - agents).transpose(2, 0, 1)
    move = np.select([d_row > 0, d_row < 0, d_col > 0, d_col < 0], [DOWN, UP, RIGHT, LEFT], STAY)
    near = np.abs(d_row) + np.abs(d_col) <= 1
    done = env.opened[:, mine]
    return np.where(done, STAY, np.where(near, OPEN, move))


# ---------------------------------------------------------------- golden totals (decision 2)
def test_scripted_cooperation_scores_six_and_nobody_opening_scores_minus_nine():
    env = Exchange(3, 64)
    assert env.optimal_collective_return() == 6.0
    assert env.floor_collective_return() == (-9.0, "all_defect")
    cooperative = rollout_return(env, open_for_next)
    assert env.opened.all()
    assert abs(cooperative.mean() - 6.0) <= 0.01
    np.testing.assert_allclose(cooperative, 6.0, atol=1e-5)  # float32 rewards summed over 900 agent-steps
    wander = np.random.default_rng(1)  # random moves and stays, never open
    nobody = rollout_return(env, lambda e: wander.integers(0, OPEN, size=(e.batch_size, e.n_agents)))
    np.testing.assert_allclose(nobody, -9.0, atol=1e-5)


def test_uniform_random_play_already_opens_every_box():
    """docs/decisions.md 16: the spec's rules make an untrained (uniform) policy score about the optimum;
    only learning to withhold *open* (below ~1/300 per step) brings a total near the −9 floor."""
    env = Exchange(3, 256)
    play = np.random.default_rng(2)
    uniform = rollout_return(env, lambda e: play.integers(0, e.n_actions, size=(e.batch_size, e.n_agents)))
    assert env.opened.mean() > 0.99
    assert 5.9 < uniform.mean() <= 6.0 + 1e-5


def test_following_the_cooperative_action_also_opens_every_box():
    env = Exchange(3, 32)
    np.testing.assert_allclose(rollout_return(env, lambda e: e.cooperative_action(), seed=3), 6.0, atol=1e-5)
    assert env.opened.all()


def test_private_food_values_change_the_optimum():
    values = np.array([12.0, 4.0, 9.5])  # box 1 is not worth opening (4 < 5)
    env = Exchange(3, 8, food_values=values)
    assert env.optimal_collective_return() == pytest.approx(7.0 + 0.0 + 4.5 - 9.0)
    draws = draw_private_params(np.random.default_rng(0), 3)
    assert draws.shape == (3,) and np.all((draws >= 5) & (draws <= 15))
    assert Exchange(3, 1, horizon=7).optimal_collective_return() is None  # too short to be sure


# ---------------------------------------------------------------- crafted states
def crafted(batch: int = 1, **kwargs) -> Exchange:
    env = Exchange(3, batch, **kwargs)
    agents = np.array([[[2, 2], [0, 0], [4, 4]]] * batch)
    boxes = np.array(
        [[[2, 3], [1, 2], [0, 1]]] * batch
    )  # box 0 by agent 0, box 1 above agent 0, box 2 by agent 1
    env.reset_to(agents, boxes)
    return env


def test_open_rules_pay_opener_and_recipient_once():
    env = crafted()
    np.testing.assert_array_equal(
        env.eligible()[0], [[False, True, False], [False, False, True], [False] * 3]
    )
    result = env.step(np.array([[OPEN, OPEN, OPEN]]))  # agent 0 opens box 1, agent 1 box 2, agent 2 nothing
    np.testing.assert_allclose(result.rewards, [[-5.01, -0.01 + 10 - 5, -0.01 + 10]], atol=1e-6)
    np.testing.assert_array_equal(env.opened, [[False, True, True]])
    np.testing.assert_array_equal(result.state[0, -3:], [0, 1, 1])
    result = env.step(np.array([[OPEN, OPEN, OPEN]]))  # nothing left that they may open
    np.testing.assert_allclose(result.rewards, [[-0.01] * 3], atol=1e-7)


def test_own_box_cannot_be_opened_and_opening_does_not_move():
    env = crafted()
    env.reset_to(np.array([[[2, 3], [4, 4], [4, 3]]]), np.array([[[2, 3], [0, 0], [0, 4]]]))
    np.testing.assert_array_equal(env.eligible()[0], np.zeros((3, 3), dtype=bool))
    result = env.step(np.array([[OPEN, UP, LEFT]]))
    np.testing.assert_allclose(result.rewards, [[-0.01] * 3], atol=1e-7)
    np.testing.assert_array_equal(env.agent_cells[0], [[2, 3], [3, 4], [4, 2]])
    np.testing.assert_allclose(result.positions[0], np.array([[2, 3], [3, 4], [4, 2]]) / 4)


def test_contest_goes_to_the_highest_priority_and_only_it_pays():
    env = Exchange(3, 2)
    agents = np.array([[[1, 1], [1, 3], [4, 4]]] * 2)  # agents 0 and 1 both next to box 2 at (1, 2)
    boxes = np.array([[[4, 0], [0, 4], [1, 2]]] * 2)
    priority = np.zeros((2, 3, 3))
    priority[0, 2] = [0.9, 0.1, 0.5]  # episode 0: agent 0 wins box 2
    priority[1, 2] = [0.2, 0.8, 0.5]  # episode 1: agent 1 wins box 2
    env.reset_to(agents, boxes, priority=priority)
    result = env.step(np.array([[OPEN, OPEN, STAY]] * 2))
    np.testing.assert_allclose(result.rewards, [[-5.01, -0.01, 9.99], [-0.01, -5.01, 9.99]], atol=1e-6)


def test_walls_clip_and_agents_may_share_cells():
    env = Exchange(3, 1)
    env.reset_to(np.array([[[0, 0], [0, 1], [4, 4]]]), np.array([[[2, 2], [3, 3], [4, 0]]]))
    env.step(np.array([[UP, LEFT, DOWN]]))
    np.testing.assert_array_equal(env.agent_cells[0], [[0, 0], [0, 0], [4, 4]])


def test_cooperative_action():
    env = crafted()
    np.testing.assert_array_equal(env.cooperative_action(), [[OPEN, OPEN, UP]])  # agent 2 heads for box 0
    env.reset_to(env.agent_cells, env.box_cells, opened=np.array([[True, True, True]]))
    np.testing.assert_array_equal(env.cooperative_action(), [[STAY, STAY, STAY]])


def test_state_and_observation_layout():
    env = crafted()
    state = env.reset_to(env.agent_cells, env.box_cells).state
    assert state.shape == (1, env.state_dim) == (1, 153) and state.dtype == np.float32
    assert state[0, :75].reshape(3, 25).argmax(axis=1).tolist() == [12, 0, 24]
    assert state[0, 75:150].reshape(3, 25).argmax(axis=1).tolist() == [13, 7, 1]
    obs = env.observations()
    assert obs.shape == (1, 3, env.obs_dim) == (1, 3, 38) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[0, 0, 25:29], np.array([-2, -2, 2, 2]) / 4)  # agents 1 and 2 from agent 0
    np.testing.assert_allclose(obs[0, 0, 29:31], np.array([0, 1]) / 4)  # own box first


def test_reset_places_everything_on_distinct_cells():
    env = Exchange(3, 200)
    env.reset(np.random.default_rng(1))
    cells = np.concatenate([env.agent_cells, env.box_cells], axis=1) @ (5, 1)  # [B, 6]
    assert all(len(set(row)) == 6 for row in cells.tolist())
    assert not env.opened.any()


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.array([[0, 6, 0]]), r"agent 1: action 6 out of range \[0, 6\)"),
        (np.array([[0, 0, -1]]), r"agent 2: action -1 out of range \[0, 6\)"),
        (np.array([[0.0, 1.0, 2.0]]), "must be integers"),
        (np.array([0, 1, 2]), r"shape \[B, N\] = \(1, 3\)"),
    ],
)
def test_bad_actions_raise(actions, message):
    env = Exchange(3, 1)
    env.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        env.step(actions)


def test_lifecycle_and_constructor_errors():
    env = Exchange(3, 1, horizon=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros((1, 3), dtype=np.int64))
    env.reset(np.random.default_rng(0))
    env.step(np.zeros((1, 3), dtype=np.int64))
    assert env.step(np.zeros((1, 3), dtype=np.int64)).truncated.all()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="food_values must be 3 finite numbers"):
        Exchange(3, 1, food_values=[1.0, 2.0])
    with pytest.raises(ValueError, match="n_agents <= 12"):
        Exchange(13, 1)


# ---------------------------------------------------------------- determinism and the PettingZoo view
def trajectory(env: Exchange, env_seed: int, action_seed: int) -> list[np.ndarray]:
    actions = np.random.default_rng(action_seed).integers(
        0, 6, size=(env.horizon, env.batch_size, env.n_agents)
    )
    out = [env.reset(np.random.default_rng(env_seed)).state]
    for a in actions:
        result = env.step(a)
        out += [result.state, result.rewards]
    return out


def test_same_seed_same_trajectory_and_different_seeds_differ():
    a, b = (trajectory(Exchange(3, 4, horizon=40), 5, 1) for _ in range(2))
    c = trajectory(Exchange(3, 4, horizon=40), 6, 1)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_batch_equals_single_episodes_reset_in_turn():
    """Episode b of a batch reset from ``rng`` is the b-th batch-1 env reset in turn from the same ``rng``."""
    batch, horizon = 5, 60
    batched = Exchange(3, batch, horizon=horizon)
    actions = np.random.default_rng(0).integers(0, 6, size=(horizon, batch, 3))
    first = batched.reset(np.random.default_rng(7)).state
    steps = [batched.step(a) for a in actions]
    single, rng = Exchange(3, 1, horizon=horizon), np.random.default_rng(7)
    for b in range(batch):
        np.testing.assert_array_equal(single.reset(rng).state[0], first[b])
        for t in range(horizon):
            result = single.step(actions[t, b : b + 1])
            np.testing.assert_array_equal(result.state[0], steps[t].state[b])
            np.testing.assert_array_equal(result.rewards[0], steps[t].rewards[b])


def test_view_replays_the_batch_one_env():
    view = ParallelEpisode(partial(Exchange, 3, horizon=30))
    env = Exchange(3, 1, horizon=30)
    actions = np.random.default_rng(2).integers(0, 6, size=(30, 3))
    obs, _ = view.reset(seed=11)
    np.testing.assert_array_equal(obs["agent_0"], env.reset(np.random.default_rng(11)).state[0])
    for t in range(30):
        obs, rewards, _, truncs, _ = view.step({f"agent_{i}": int(actions[t, i]) for i in range(3)})
        result = env.step(actions[t][None])
        np.testing.assert_array_equal(obs["agent_2"], result.state[0])
        assert [rewards[f"agent_{i}"] for i in range(3)] == result.rewards[0].tolist()
    assert all(truncs.values()) and view.agents == []


def test_parallel_api_and_seed():
    factory = partial(Exchange, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        parallel_api_test(ParallelEpisode(factory), num_cycles=100)
    parallel_seed_test(lambda: ParallelEpisode(factory), num_cycles=100)
