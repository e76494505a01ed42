"""Cooperative Predation (decision 1): hand-derived payoffs, exact returns, errors, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.envs import ENV_NAMES, make_env
from confide.envs.predation import CooperativePredation, scheme_payoffs


def rollout_return(env: CooperativePredation, policy, seed: int = 0) -> np.ndarray:
    """Run one batch of episodes; return the collective return per episode ``[B]`` (float64)."""
    env.reset(np.random.default_rng(seed))
    total = np.zeros(env.batch_size)
    for _ in range(env.horizon):
        result = env.step(policy(env))
        total += result.rewards.astype(np.float64).sum(axis=1)
    assert result.truncated.all()
    return total


def all_approach(env: CooperativePredation) -> np.ndarray:
    return env.cooperative_action()


def all_defect(env: CooperativePredation) -> np.ndarray:
    return 1 - env.cooperative_action()


def one_approacher(env: CooperativePredation) -> np.ndarray:
    actions = 1 - env.cooperative_action()
    actions[:, 0] = env.cooperative_action()[:, 0]
    return actions


# ---------------------------------------------------------------- exact returns (hand-derived)
@pytest.mark.parametrize(
    ("scheme", "n", "optimum", "floor", "worst"),
    [
        ("ss", 8, -240.0, -3600.0, -3600.0),  # all: −1·8·30; none: (−15)·8·30
        ("as", 8, -120.0, -720.0, -840.0),  # one approacher −4·30; none −3·8·30; 7 approachers −28·30
        ("as", 4, -120.0, -360.0, -360.0),  # tie k=1 (−4) and k=4 (−4); k=3 gives −12 = none's −12
        ("as", 3, -90.0, -270.0, -270.0),  # all −3 beats one −4; k=2 gives −8, none −9
        ("as", 2, -60.0, -180.0, -180.0),  # all −2, one −4, none −6
        ("ss", 2, -60.0, -180.0, -180.0),  # all −2, mixed −4, none −6
    ],
)
def test_optimum_floor_worst(scheme, n, optimum, floor, worst):
    env = CooperativePredation(n, 1, scheme=scheme)
    assert env.optimal_collective_return() == optimum
    assert env.floor_collective_return() == (floor, "all_defect")
    assert env.worst_collective_return() == worst


def test_per_step_collective_reward_table():
    ss = CooperativePredation(8, 1, scheme="ss")
    ss_table = [-120, -16, -32, -48, -64, -80, -96, -112, -8]  # none −15·8, mixed −16·k, all −8
    assert [ss.per_step_collective_reward(k) for k in range(9)] == ss_table
    as_ = CooperativePredation(8, 1, scheme="as")
    as_table = [-24, -4, -8, -12, -16, -20, -24, -28, -8]  # none −3·8, mixed −4·k, all −8
    assert [as_.per_step_collective_reward(k) for k in range(9)] == as_table
    as4 = CooperativePredation(4, 1, scheme="as")
    assert as4.per_step_collective_reward(1) == as4.per_step_collective_reward(4) == -4
    with pytest.raises(ValueError, match=r"k must lie in \[0, 8\]"):
        ss.per_step_collective_reward(9)


def test_scheme_payoffs():
    assert scheme_payoffs("as", 8) == (-1, -3, -4, 0)
    assert scheme_payoffs("ss", 8) == (-1, -15, -16, 0)


@pytest.mark.parametrize("n", [2, 3, 8, 20])
def test_scripted_all_approach_scores_optimum_under_ss(n):
    env = CooperativePredation(n, 16, scheme="ss")
    np.testing.assert_array_equal(rollout_return(env, all_approach), env.optimal_collective_return())
    np.testing.assert_array_equal(rollout_return(env, all_defect), env.floor_collective_return()[0])


def test_scripted_policies_under_as_with_8_agents():
    env = CooperativePredation(8, 16, scheme="as")
    np.testing.assert_array_equal(rollout_return(env, one_approacher), -120.0)
    np.testing.assert_array_equal(rollout_return(env, one_approacher), env.optimal_collective_return())
    np.testing.assert_array_equal(rollout_return(env, all_approach), -240.0)
    np.testing.assert_array_equal(rollout_return(env, all_defect), env.floor_collective_return()[0])


# ---------------------------------------------------------------- crafted states
AGENTS = np.array([[5.0, 15.0, 20.0, 1.0], [5.0, 15.0, 20.0, 1.0], [5.0, 15.0, 10.0, 1.0]])
PREY = np.array([10.0, 10.0, 10.0])
ACTIONS = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]])  # all / none / mixed (agent 2 on prey)


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("ss", [[-1, -1, -1, -1], [-7, -7, -7, -7], [-8, 0, -8, 0]]),
        ("as", [[-1, -1, -1, -1], [-3, -3, -3, -3], [-4, 0, -4, 0]]),
    ],
)
def test_exact_rewards_all_none_mixed(scheme, expected):
    env = CooperativePredation(4, 3, scheme=scheme)
    env.reset_to(AGENTS, PREY)
    result = env.step(ACTIONS)
    assert result.rewards.dtype == np.float32
    np.testing.assert_array_equal(result.rewards, np.array(expected, dtype=np.float32))
    np.testing.assert_array_equal(env.raw_positions, AGENTS + 2 * ACTIONS - 1)
    np.testing.assert_allclose(result.state, (AGENTS + 2 * ACTIONS - 1 - PREY[:, None]) / 30, rtol=1e-6)
    assert result.state.dtype == np.float32 and result.state.shape == (3, 4)
    assert result.positions.shape == (3, 4, 1) and result.positions.dtype == np.float32
    np.testing.assert_allclose(result.positions[..., 0], (AGENTS + 2 * ACTIONS - 1) / 30, rtol=1e-6)


def test_agent_on_prey_approaches_either_way():
    env = CooperativePredation(2, 2, scheme="ss")
    env.reset_to(np.array([[10.0, 3.0], [10.0, 3.0]]), np.array([10.0, 10.0]))
    np.testing.assert_array_equal(env.cooperative_action(), [[1, 1], [1, 1]])
    approach = env.approaches(np.array([[0, 1], [1, 1]]))
    np.testing.assert_array_equal(approach, [[True, True], [True, True]])
    result = env.step(np.array([[0, 0], [1, 0]]))  # agent 1 moves away: mixed, agent 0 the approacher
    np.testing.assert_array_equal(result.rewards, [[-4, 0], [-4, 0]])


def test_overshoot_counts_as_approach():
    env = CooperativePredation(2, 1, scheme="as")
    env.reset_to(np.array([[10.5, 9.75]]), np.array([10.0]))
    result = env.step(np.array([[0, 1]]))  # both jump past the prey
    np.testing.assert_array_equal(result.rewards, [[-1, -1]])
    np.testing.assert_array_equal(env.raw_positions, [[9.5, 10.75]])
    np.testing.assert_array_equal(env.cooperative_action(), [[1, 0]])


def test_clipping_at_walls_and_direction_decides_approach():
    env = CooperativePredation(3, 1, scheme="ss")
    env.reset_to(np.array([[0.0, 30.0, 29.5]]), np.array([5.0]))
    # agent 0 pushes into the left wall: it does not move, and it moved away (defects)
    result = env.step(np.array([[0, 1, 1]]))
    np.testing.assert_array_equal(env.raw_positions, [[0.0, 30.0, 30.0]])
    np.testing.assert_array_equal(result.rewards, [[-5, -5, -5]])  # none approach: −2·3+1 each
    np.testing.assert_allclose(result.positions[0, :, 0], [0.0, 1.0, 1.0])
    result = env.step(np.array([[1, 0, 0]]))
    np.testing.assert_array_equal(result.rewards, [[-1, -1, -1]])
    np.testing.assert_array_equal(env.raw_positions, [[1.0, 29.0, 29.0]])


def test_cooperative_action_points_to_prey():
    env = CooperativePredation(3, 1)
    env.reset_to(np.array([[2.0, 25.0, 7.0]]), np.array([7.0]))
    coop = env.cooperative_action()
    assert coop.dtype == np.int64
    np.testing.assert_array_equal(coop, [[1, 0, 1]])


def test_truncation_and_termination_flags():
    env = CooperativePredation(2, 3, horizon=4)
    env.reset(np.random.default_rng(0))
    for t in range(1, 5):
        result = env.step(np.zeros((3, 2), dtype=np.int64))
        assert result.terminated.dtype == bool and not result.terminated.any()
        assert result.truncated.shape == (3,) and result.truncated.all() == (t == 4)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((3, 2), dtype=np.int64))
    env.reset(np.random.default_rng(1))
    assert env.t == 0
    env.step(np.zeros((3, 2), dtype=np.int64))


def test_step_before_reset_raises():
    env = CooperativePredation(2, 1)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros((1, 2), dtype=np.int64))


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.array([[0, 1, 0, 5]]), r"agent 3: action 5 out of range \[0, 2\)"),
        (np.array([[0, -1, 0, 1]]), r"agent 1: action -1 out of range \[0, 2\)"),
        (np.array([[0.0, 1.0, 0.0, 1.0]]), "must be integers"),
        (np.array([[True, False, True, False]]), "must be integers"),
        (np.array([0, 1, 0, 1]), r"shape \[B, N\] = \(1, 4\)"),
        (np.zeros((1, 5), dtype=np.int64), r"shape \[B, N\] = \(1, 4\)"),
    ],
)
def test_bad_actions_raise(actions, message):
    env = CooperativePredation(4, 1)
    env.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        env.step(actions)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_agents": 1, "batch_size": 1}, "n_agents >= 2"),
        ({"n_agents": 2, "batch_size": 0}, "batch_size must be >= 1"),
        ({"n_agents": 2, "batch_size": 1, "horizon": 0}, "horizon must be >= 1"),
        ({"n_agents": 2, "batch_size": 1, "scheme": "zz"}, "scheme 'zz'; known schemes: as, ss"),
    ],
)
def test_constructor_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CooperativePredation(**kwargs)


def test_reset_to_validation():
    env = CooperativePredation(2, 1)
    with pytest.raises(ValueError, match="agent_x must lie in"):
        env.reset_to(np.array([[31.0, 1.0]]), np.array([3.0]))
    with pytest.raises(ValueError, match="prey_x must have shape"):
        env.reset_to(np.array([[1.0, 1.0]]), np.array([3.0, 4.0]))


def test_registry():
    assert ENV_NAMES[:2] == ("predation", "matrix") and len(ENV_NAMES) == 10
    env = make_env("predation", 8, 4, scheme="as", horizon=10)
    assert isinstance(env, CooperativePredation)
    assert (env.n_agents, env.batch_size, env.horizon, env.scheme) == (8, 4, 10, "as")
    with pytest.raises(
        ValueError, match="environment 'pong'; known environments: predation, matrix, exchange"
    ):
        make_env("pong", 2, 1)


# ---------------------------------------------------------------- determinism and reproducibility
def trajectory(env: CooperativePredation, env_seed: int, action_seed: int) -> list[np.ndarray]:
    action_rng = np.random.default_rng(action_seed)
    out = [env.reset(np.random.default_rng(env_seed)).state]
    for _ in range(env.horizon):
        result = env.step(action_rng.integers(0, 2, size=(env.batch_size, env.n_agents)))
        out += [result.state, result.rewards, result.positions]
    return out


def test_same_seed_same_trajectory_and_different_seeds_differ():
    a = trajectory(CooperativePredation(5, 6, scheme="as"), 11, 3)
    b = trajectory(CooperativePredation(5, 6, scheme="as"), 11, 3)
    c = trajectory(CooperativePredation(5, 6, scheme="as"), 12, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_batch_equals_single_episodes_reset_in_turn():
    batch, n = 4, 3
    batched = CooperativePredation(n, batch)
    first = batched.reset(np.random.default_rng(7)).state
    single = CooperativePredation(n, 1)
    rng = np.random.default_rng(7)
    actions = np.random.default_rng(0).integers(0, 2, size=(batched.horizon, batch, n))
    batched_rewards = np.stack([batched.step(a).rewards for a in actions])
    for b in range(batch):
        np.testing.assert_array_equal(single.reset(rng).state[0], first[b])
        rewards = np.stack([single.step(actions[t, b : b + 1]).rewards[0] for t in range(single.horizon)])
        np.testing.assert_array_equal(rewards, batched_rewards[:, b])
        np.testing.assert_array_equal(single.raw_positions[0], batched.raw_positions[b])


# ---------------------------------------------------------------- property tests vs a slow reference
def reference_rewards(scheme: str, x: np.ndarray, prey: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Loop-by-loop transcription of decision 1, for one batch of states ``x`` ``[B, N]``."""
    n_batch, n = x.shape
    out = np.zeros((n_batch, n))
    for b in range(n_batch):
        approach = []
        for i in range(n):
            move = -1 if actions[b, i] == 0 else 1
            approach.append(x[b, i] == prey[b] or np.sign(prey[b] - x[b, i]) == move)
        k = sum(approach)
        for i in range(n):
            if k == n:
                out[b, i] = -1
            elif k == 0:
                out[b, i] = -3 if scheme == "as" else -2 * n + 1
            elif approach[i]:
                out[b, i] = -4 if scheme == "as" else -2 * n
    return out


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 9),
    batch=st.integers(1, 4),
    scheme=st.sampled_from(["as", "ss"]),
    seed=st.integers(0, 2**32 - 1),
    p_approach=st.floats(0.0, 1.0),
)
def test_rewards_match_reference_and_stay_in_bounds(n, batch, scheme, seed, p_approach):
    env = CooperativePredation(n, batch, scheme=scheme, horizon=12)
    rng = np.random.default_rng(seed)
    env.reset(rng)
    per_step = [env.per_step_collective_reward(k) for k in range(n + 1)]
    individual = scheme_payoffs(scheme, n)
    for _ in range(env.horizon):
        coop = env.cooperative_action()
        actions = np.where(rng.random((batch, n)) < p_approach, coop, 1 - coop)
        expected = reference_rewards(scheme, env.raw_positions, env.prey_position, actions)
        k = env.approaches(actions).sum(axis=1)
        result = env.step(actions)
        np.testing.assert_array_equal(result.rewards, expected)
        collective = result.rewards.sum(axis=1)
        np.testing.assert_array_equal(collective, [env.per_step_collective_reward(int(kb)) for kb in k])
        assert min(per_step) <= collective.min() and collective.max() <= max(per_step)
        assert min(individual) <= result.rewards.min() and result.rewards.max() <= max(individual)
        assert (result.positions >= 0).all() and (result.positions <= 1).all()
        assert (np.abs(result.state) <= 1).all()


def test_team_reward_gives_every_agent_the_mean_and_keeps_the_collective():
    import numpy as np

    from confide.envs.predation import CooperativePredation
    from confide.envs.team_reward import TeamReward

    base = CooperativePredation(4, 3)
    team = TeamReward(CooperativePredation(4, 3))
    base.reset(np.random.default_rng(5))
    team.reset(np.random.default_rng(5))
    actions = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    r, rt = base.step(actions).rewards, team.step(actions).rewards
    np.testing.assert_allclose(rt, np.repeat(r.mean(axis=1, keepdims=True), 4, axis=1))
    np.testing.assert_allclose(rt.sum(axis=1), r.sum(axis=1), rtol=1e-6)
    assert team.optimal_collective_return() == base.optimal_collective_return()


def test_joint_action_rates_count_cooperation_in_taken_actions():
    import torch

    from confide.core.diagnostics import joint_action_rates
    from confide.core.rollout import Rollout

    coop = torch.tensor([[[1, 0], [0, 0]], [[1, 1], [1, 0]]])  # [T=2, B=2, N=2]
    actions = torch.tensor([[[1, 0], [1, 1]], [[0, 1], [1, 0]]])  # C-C, D-D, D-C, C-C
    z = torch.zeros(2, 2, 2)
    r = Rollout(z[..., :1], z[..., :1], actions, z, z, torch.zeros(2, 2, dtype=torch.bool), None, coop)
    assert joint_action_rates(r) == {
        "actions/cooperate": 0.625,
        "actions/all_cooperate": 0.5,
        "actions/none_cooperate": 0.25,
    }


# ---------------------------------------------------------------- private parameter (issue 7)
def test_draw_private_params_is_seeded_and_from_the_binary_prior():
    from confide.envs.predation import APPROACH_WEIGHTS, draw_private_params

    w = draw_private_params(np.random.default_rng(4), 1000)
    assert w.shape == (1000,) and w.dtype == np.float64 and set(w) == set(APPROACH_WEIGHTS) == {0.5, 1.5}
    assert 450 < (w == 1.5).sum() < 550
    np.testing.assert_array_equal(draw_private_params(np.random.default_rng(4), 1000), w)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 7),
    scheme=st.sampled_from(["as", "ss"]),
    seed=st.integers(0, 2**32 - 1),
    p_approach=st.floats(0.0, 1.0),
)
def test_unit_weights_reproduce_the_papers_rewards_exactly(n, scheme, seed, p_approach):
    default = CooperativePredation(n, 3, scheme=scheme, horizon=10)
    weighted = CooperativePredation(n, 3, scheme=scheme, horizon=10, approach_weights=[1.0] * n)
    np.testing.assert_array_equal(
        default.reset(np.random.default_rng(seed)).state, weighted.reset(np.random.default_rng(seed)).state
    )
    rng = np.random.default_rng(seed + 1)
    for _ in range(default.horizon):
        coop = default.cooperative_action()
        actions = np.where(rng.random((3, n)) < p_approach, coop, 1 - coop)
        np.testing.assert_array_equal(weighted.step(actions).rewards, default.step(actions).rewards)
    assert weighted.optimal_collective_return() == default.optimal_collective_return()
    assert weighted.worst_collective_return() == default.worst_collective_return()
    assert weighted.floor_collective_return() == default.floor_collective_return()


def test_weights_scale_only_the_approachers_own_rewards():
    # ss, N = 4: all −1·w_i; none −7; mixed: approacher −8·w_i, others 0 (the AGENTS/PREY/ACTIONS cases).
    env = CooperativePredation(4, 3, scheme="ss", approach_weights=[0.5, 1.5, 2.0, 0.0])
    env.reset_to(AGENTS, PREY)
    expected = [[-0.5, -1.5, -2.0, 0.0], [-7, -7, -7, -7], [-4, 0, -16, 0]]
    np.testing.assert_array_equal(env.step(ACTIONS).rewards, np.array(expected, dtype=np.float32))


def test_optimum_worst_and_floor_for_drawn_weights_by_hand():
    # ss, N = 3, w = (0.25, 1.5, 1.0), per step: all −(0.25+1.5+1) = −2.75; none 3·(−5) = −15;
    # one approacher −6·w: best −1.5 (agent 0), worst −9 (agent 1); two: best −6·1.25 = −7.5, worst −15.
    env = CooperativePredation(3, 2, scheme="ss", approach_weights=[0.25, 1.5, 1.0])
    assert [env.per_step_collective_reward(k) for k in range(4)] == [-15.0, -1.5, -7.5, -2.75]
    assert [env.per_step_collective_reward(k, best=False) for k in range(4)] == [-15.0, -9.0, -15.0, -2.75]
    assert env.optimal_collective_return() == 30 * -1.5
    assert env.worst_collective_return() == 30 * -15.0
    assert env.floor_collective_return() == (30 * -15.0, "all_defect")
    # the optimum is reached: agent 0 (the cheapest hunter) approaches alone at every step
    assert (rollout_return(env, one_approacher) == env.optimal_collective_return()).all()
    # as, N = 4, w = (2, 0.5, 0.5, 3): all −6; none −12; mixed −4·Σ approachers' w: one best −2, worst −12;
    # two −4 / −20; three −12 / −22. Optimum −2 per step, worst −22.
    env = CooperativePredation(4, 1, scheme="as", approach_weights=[2.0, 0.5, 0.5, 3.0])
    assert [env.per_step_collective_reward(k) for k in range(5)] == [-12.0, -2.0, -4.0, -12.0, -6.0]
    assert [env.per_step_collective_reward(k, best=False) for k in range(5)] == [
        -12.0,
        -12.0,
        -20.0,
        -22.0,
        -6.0,
    ]
    assert env.optimal_collective_return() == 30 * -2.0
    assert env.worst_collective_return() == 30 * -22.0


@pytest.mark.parametrize("weights", [[1.0], [1.0, -0.5], [1.0, float("nan")]])
def test_bad_weights_raise(weights):
    with pytest.raises(ValueError, match="approach_weights must be 2 finite values >= 0"):
        CooperativePredation(2, 1, approach_weights=weights)
    assert make_env("predation", 2, 1, approach_weights=[0.5, 1.5]).approach_weights.tolist() == [0.5, 1.5]


def test_vectorised_step_matches_a_loop_transcription_on_integer_layouts():
    """The table-driven ``step`` against decision 1 written out agent by agent, with weights, on integer
    layouts where agents often sit exactly on the prey or at a wall (the cases floats rarely hit)."""
    rng = np.random.default_rng(7)
    n, batch = 5, 40
    weights = np.array([0.5, 1.5, 1.0, 0.0, 1.5])
    for scheme in ("as", "ss"):
        env = CooperativePredation(n, batch, scheme=scheme, horizon=20, approach_weights=weights)
        all_, none, mixed_a, mixed_o = scheme_payoffs(scheme, n)
        x = rng.integers(0, 31, size=(batch, n)).astype(float)
        prey = rng.integers(0, 31, size=batch).astype(float)
        env.reset_to(x, prey)
        for _ in range(env.horizon):
            actions = rng.integers(0, 2, size=(batch, n))
            expected = np.zeros((batch, n))
            for b in range(batch):
                moves = [1 if a else -1 for a in actions[b]]
                approach = [x[b, i] == prey[b] or np.sign(prey[b] - x[b, i]) == moves[i] for i in range(n)]
                k = sum(approach)
                for i in range(n):
                    pay = all_ if k == n else none if k == 0 else mixed_a if approach[i] else mixed_o
                    expected[b, i] = pay * weights[i] if approach[i] else pay
                    x[b, i] = min(max(x[b, i] + moves[i], 0.0), 30.0)
            result = env.step(actions)
            np.testing.assert_array_equal(result.rewards, expected.astype(np.float32))
            np.testing.assert_array_equal(result.state, ((x - prey[:, None]) / 30.0).astype(np.float32))
            np.testing.assert_array_equal(result.positions[:, :, 0], (x / 30.0).astype(np.float32))
            np.testing.assert_array_equal(env.cooperative_action(), (x <= prey[:, None]).astype(np.int64))
