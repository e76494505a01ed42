"""MPE simple spread, line control, circle control: physics, reward rules, observations, conformance."""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
import warnings
from functools import partial

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test
from scipy.optimize import linear_sum_assignment

from confide.envs import assignment, mpe_physics, mpe_tasks
from confide.envs.assignment import matched_costs, min_cost_assignment
from confide.envs.mpe_physics import ParticleParams, contact_forces, physics_step
from confide.envs.mpe_tasks import CircleControl, LineControl, SimpleSpread
from confide.envs.pettingzoo_view import ParallelEpisode

TASKS = {"spread": SimpleSpread, "line": LineControl, "circle": CircleControl}
NOOP, LEFT, RIGHT, DOWN, UP = range(5)


def one_world(*xy: tuple[float, float]) -> np.ndarray:
    """``[1, N, 2]`` float64 positions of one episode."""
    return np.array([xy], dtype=np.float64)


# ---------------------------------------------------------------- physics against hand-computed steps
def test_free_particle_under_force_with_damping_position_first():
    params = ParticleParams(size=0.15)  # mpe2: position first
    pos, vel = one_world((0.0, 0.0)), np.zeros((1, 1, 2))
    pos, vel = physics_step(pos, vel, np.array([[RIGHT]]), params)
    np.testing.assert_allclose(pos[0, 0], [0.0, 0.0])  # moved with the old (zero) velocity
    np.testing.assert_allclose(vel[0, 0], [0.5, 0.0])  # 5 · 0.1
    pos, vel = physics_step(pos, vel, np.array([[RIGHT]]), params)
    np.testing.assert_allclose(pos[0, 0], [0.05, 0.0])
    np.testing.assert_allclose(vel[0, 0], [0.75 * 0.5 + 0.5, 0.0])
    pos, vel = physics_step(pos, vel, np.array([[NOOP]]), params)  # coasting: damping only
    np.testing.assert_allclose(pos[0, 0], [0.05 + 0.0875, 0.0])
    np.testing.assert_allclose(vel[0, 0], [0.75 * 0.875, 0.0])


def test_free_particle_velocity_first_and_action_directions():
    params = ParticleParams(size=0.15, order="velocity_first")  # original MPE / DPO's MAPPO core
    pos, vel = one_world((1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0)), np.zeros((1, 5, 2))
    # Far apart is not needed for direction checks: make them distinct so contacts vanish.
    pos = pos + np.array([[[0, 0], [10, 0], [20, 0], [30, 0], [40, 0]]])
    new_pos, new_vel = physics_step(pos, vel, np.array([[NOOP, LEFT, RIGHT, DOWN, UP]]), params)
    expected_vel = np.array([[0, 0], [-0.5, 0], [0.5, 0], [0, -0.5], [0, 0.5]])
    np.testing.assert_allclose(new_vel[0], expected_vel)
    np.testing.assert_allclose(new_pos[0] - pos[0], 0.1 * expected_vel)  # moved with the new velocity


def test_contact_force_between_two_overlapping_particles():
    params = ParticleParams(size=0.15)
    pos = one_world((0.0, 0.0), (0.2, 0.0))  # overlap 0.3 − 0.2 = 0.1
    force = contact_forces(pos, params)
    # softplus penetration k·log(1 + e^{0.1/k}) = 0.1 (+ e^{-100}·k), times stiffness 100 → 10
    np.testing.assert_allclose(force[0], [[-10.0, 0.0], [10.0, 0.0]], rtol=1e-12)
    _, vel = physics_step(pos, np.zeros((1, 2, 2)), np.array([[NOOP, NOOP]]), params)
    np.testing.assert_allclose(vel[0], [[-1.0, 0.0], [1.0, 0.0]], rtol=1e-12)
    touching = contact_forces(one_world((0.0, 0.0), (0.0, 0.3)), params)
    np.testing.assert_allclose(touching[0, 1], [0.0, 100 * 1e-3 * math.log(2)], rtol=1e-9)
    near = contact_forces(one_world((0.0, 0.0), (0.0, 0.5)), params)
    assert np.all(np.abs(near) < 1e-80)  # 100 · k · e^{−200}
    apart = contact_forces(one_world((0.0, 0.0), (0.0, 1.5)), params)
    assert np.all(apart == 0.0)  # the softplus underflows to exactly zero
    same = contact_forces(one_world((0.3, 0.3), (0.3, 0.3)), params)
    assert np.all(same == 0.0)  # choice: coincident agents exert no force (mpe2 gives NaN)


def test_speed_is_clipped_when_a_limit_is_set():
    params = ParticleParams(size=0.05, max_speed=0.3, order="velocity_first")
    pos, vel = physics_step(one_world((0.0, 0.0)), np.zeros((1, 1, 2)), np.array([[UP]]), params)
    np.testing.assert_allclose(vel[0, 0], [0.0, 0.3])
    np.testing.assert_allclose(pos[0, 0], [0.0, 0.03])
    with pytest.raises(ValueError, match="unknown integration order"):
        ParticleParams(size=0.1, order="leapfrog")


# ---------------------------------------------------------------- against mpe2 (the reference package)
@pytest.mark.parametrize("seed", [0, 3, 11])
def test_spread_reproduces_mpe2_simple_spread(seed):
    simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
    n = 5
    ref = simple_spread_v3.parallel_env(N=n, local_ratio=0.5, max_cycles=25)
    ref_obs, _ = ref.reset(seed=seed)
    world = ref.unwrapped.world
    env = SimpleSpread(n, 1, vision=None)
    env.reset(np.random.default_rng(seed))  # same generator stream as mpe2's reset(seed)
    np.testing.assert_array_equal(env.agent_positions[0], [a.state.p_pos for a in world.agents])
    np.testing.assert_array_equal(env.landmark_positions[0], [lm.state.p_pos for lm in world.landmarks])
    actions = np.random.default_rng(seed + 100).integers(0, 5, size=(25, n))
    for t in range(25):
        ref_obs, ref_rew, _, ref_trunc, _ = ref.step(
            {a: int(actions[t, i]) for i, a in enumerate(ref.agents)}
        )
        out = env.step(actions[t][None])
        np.testing.assert_allclose(env.agent_positions[0], [a.state.p_pos for a in world.agents], atol=1e-12)
        np.testing.assert_allclose(env.agent_velocities[0], [a.state.p_vel for a in world.agents], atol=1e-12)
        # mpe2 pays 0.5 · shared + 0.5 · own collisions at local_ratio 0.5; DPO's port pays the sum.
        expected = 2.0 * np.array([ref_rew[f"agent_{i}"] for i in range(n)])
        np.testing.assert_allclose(out.rewards[0], expected, rtol=1e-6, atol=1e-6)
        obs = env.observations()[0]
        mpe2_obs = np.stack([ref_obs[f"agent_{i}"][: env.obs_dim] for i in range(n)])  # drop comm slots
        np.testing.assert_allclose(obs, mpe2_obs, atol=1e-6)
        assert out.truncated[0] == all(ref_trunc.values())


def test_line_reset_and_physics_reproduce_mpe2_simple_line():
    simple_line_v1 = pytest.importorskip("mpe2.simple_line_v1")
    n, seed, compared = 5, 7, 0
    ref = simple_line_v1.parallel_env(N=n, max_cycles=25)
    ref.reset(seed=seed)
    world, scenario = ref.unwrapped.world, ref.unwrapped.scenario
    env = LineControl(n, 1)
    env.reset(np.random.default_rng(seed))
    np.testing.assert_array_equal(env.agent_positions[0], [a.state.p_pos for a in world.agents])
    np.testing.assert_array_equal(env.landmark_positions[0], [lm.state.p_pos for lm in world.landmarks])
    np.testing.assert_allclose(env.targets()[0], scenario._expected_positions, atol=1e-15)
    actions = np.random.default_rng(1).integers(0, 5, size=(25, n))
    for t in range(25):
        _, ref_rew, _, _, _ = ref.step({a: int(actions[t, i]) for i, a in enumerate(ref.agents)})
        out = env.step(actions[t][None])
        np.testing.assert_allclose(env.agent_positions[0], [a.state.p_pos for a in world.agents], atol=1e-12)
        if np.all(scenario._delta_dists < 2.0):  # mpe2 clips each distance to [0, 2]; DPO the total
            np.testing.assert_allclose(out.rewards[0], ref_rew["agent_0"], rtol=1e-6)
            compared += 1
    assert compared > 0


# ---------------------------------------------------------------- Hungarian matching
def test_assignment_beats_greedy_on_a_hand_made_matrix():
    cost = np.array([[[1.0, 2.0], [1.0, 10.0]]])  # greedy row 0 → col 0 costs 11; optimum costs 3
    np.testing.assert_array_equal(min_cost_assignment(cost), [[1, 0]])
    np.testing.assert_array_equal(matched_costs(cost), [[2.0, 1.0]])


@pytest.mark.parametrize("n", [2, 3, 5, 6, 7])
def test_assignment_matches_scipy_optimum(n):
    cost = np.random.default_rng(n).random((50, n, n))
    col = min_cost_assignment(cost)
    assert all(sorted(c) == list(range(n)) for c in col.tolist())
    ours = np.take_along_axis(cost, col[..., None], axis=2).sum(axis=(1, 2))
    best = [c[linear_sum_assignment(c)].sum() for c in cost]
    np.testing.assert_allclose(ours, best, rtol=1e-12)


# ---------------------------------------------------------------- reward rules on hand-made layouts
def started(cls, agents, landmarks, **kwargs):
    env = cls(len(agents), 1, **kwargs)
    env.reset_to(one_world(*agents), one_world(*landmarks))
    return env


def test_spread_team_and_private_rewards():
    agents, landmarks = [(0.4, 0.0), (-0.5, 0.0)], [(0.0, 0.0), (1.0, 0.0)]
    team = started(SimpleSpread, agents, landmarks)
    # shared: landmark 0's nearest agent is 0.4 away, landmark 1's is 0.6 away; no collision (0.9 > 0.3)
    np.testing.assert_allclose(team.rewards_for(one_world(*agents)), [[-1.0, -1.0]])
    private = started(SimpleSpread, agents, landmarks, reward_mode="private")
    # matching: agent 0 → landmark 1 (0.6), agent 1 → landmark 0 (0.5), total 1.1 < 0.4 + 1.5
    np.testing.assert_allclose(private.rewards_for(one_world(*agents)), [[-0.6, -0.5]])


def test_spread_collisions_are_own_and_weighted():
    agents, landmarks = [(0.0, 0.0), (0.1, 0.0), (0.0, 1.0)], [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    env = started(SimpleSpread, agents, landmarks)
    np.testing.assert_allclose(env.rewards_for(one_world(*agents)), [[-1.9, -1.9, -0.9]])
    env.set_private_params([2.0, 0.5, 7.0])
    np.testing.assert_allclose(env.rewards_for(one_world(*agents)), [[-2.9, -1.4, -0.9]])


def test_line_rewards_hungarian_clip_and_collisions():
    landmarks = [(0.0, 0.0), (1.0, 0.0)]  # targets (0, 0), (0.5, 0), (1, 0)
    agents = [(1.0, 0.0), (0.0, 0.2), (0.5, 0.0)]
    team = started(LineControl, agents, landmarks)
    np.testing.assert_allclose(team.targets()[0], [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(team.rewards_for(one_world(*agents)), [[-0.2 / 3] * 3])
    private = started(LineControl, agents, landmarks, reward_mode="private")
    np.testing.assert_allclose(private.rewards_for(one_world(*agents)), [[0.0, -0.2, 0.0]])
    far = one_world((100.0, 0.0), (0.0, 100.0), (-100.0, 0.0))
    np.testing.assert_array_equal(team.rewards_for(far), [[-15.0] * 3])
    np.testing.assert_array_equal(private.rewards_for(far), [[-15.0] * 3])
    crowded = [(1.0, 0.0), (0.0, 0.0), (0.0, 0.05)]  # agents 1 and 2 overlap (0.05 < 0.06)
    assert np.all(team.rewards_for(one_world(*crowded)) == team.rewards_for(one_world(*crowded))[0, 0])
    team.set_private_params(1.0)
    private.set_private_params(1.0)
    d = np.array([0.0, 0.0, math.hypot(0.5, 0.05)])  # matched: 0 → (1, 0), 1 → (0, 0), 2 → (0.5, 0)
    np.testing.assert_allclose(private.rewards_for(one_world(*crowded)), [-(d + [0.0, 0.5, 0.5])])
    np.testing.assert_allclose(team.rewards_for(one_world(*crowded)), [[-(d.mean() + 1.0 / 3)] * 3])


def test_circle_targets_reanchor_at_smallest_polar_angle():
    centre = [(0.2, -0.1)]
    angles = [2 * np.pi - 0.1, 0.5, 2.0, 3.5]  # the first is −0.1 → 6.18 in [0, 2π): not the anchor
    agents = [(0.2 + 0.7 * np.cos(a), -0.1 + 0.7 * np.sin(a)) for a in angles]
    env = started(CircleControl, agents, centre)
    ring = 0.5 + np.arange(4) * np.pi / 2
    expected = np.array(centre) + 0.5 * np.stack([np.cos(ring), np.sin(ring)], axis=-1)
    np.testing.assert_allclose(env.targets()[0], expected, atol=1e-12)
    # Agents exactly on a re-anchored ring in shuffled order: the matching finds them, reward 0.
    start = 1.3
    on_ring = [
        (0.2 + 0.5 * np.cos(start + k * np.pi / 2), -0.1 + 0.5 * np.sin(start + k * np.pi / 2))
        for k in (2, 0, 3, 1)
    ]
    for mode in ("team", "private"):
        env = started(CircleControl, on_ring, centre, reward_mode=mode)
        np.testing.assert_allclose(env.rewards_for(one_world(*on_ring)), np.zeros((1, 4)), atol=1e-12)


def test_private_rewards_sum_to_n_times_team_in_formations():
    for cls in (LineControl, CircleControl):
        team, private = (
            cls(5, 16, collision_weights=0.7),
            cls(5, 16, reward_mode="private", collision_weights=0.7),
        )
        team.reset(np.random.default_rng(0))
        private.reset(np.random.default_rng(0))
        pos = team.agent_positions * 0.2  # crowd them so some collide
        np.testing.assert_allclose(private.rewards_for(pos).sum(axis=1), 5 * team.rewards_for(pos)[:, 0])


# ---------------------------------------------------------------- observations
def test_partial_observability_zeroes_entities_beyond_vision():
    agents = [(0.0, 0.0), (0.5, 0.0), (1.5, 0.0)]
    landmarks = [(0.0, 0.99), (1.0, 0.0), (0.0, -2.0)]  # 0.99 seen; exactly 1 is not (strict <)
    env = started(SimpleSpread, agents, landmarks)
    assert env.obs_dim == 4 + 6 + 4
    obs = env.observations()
    assert obs.shape == (1, 3, 14) and obs.dtype == np.float32
    expected_0 = [0, 0, 0, 0, 0, 0.99, 0, 0, 0, 0, 0.5, 0, 0, 0]
    np.testing.assert_allclose(obs[0, 0], expected_0, atol=1e-7)
    # agent 1 at (0.5, 0): landmark 0 is 1.11 away, landmark 2 2.06, agent 2 exactly 1: all unseen
    expected_1 = [0, 0, 0.5, 0, 0, 0, 0.5, 0, 0, 0, -0.5, 0, 0, 0]
    np.testing.assert_allclose(obs[0, 1], expected_1, atol=1e-7)
    full = started(SimpleSpread, agents, landmarks, vision=None).observations()
    np.testing.assert_allclose(full[0, 0], [0, 0, 0, 0, 0, 0.99, 1, 0, 0, -2, 0.5, 0, 1.5, 0], atol=1e-7)


@pytest.mark.parametrize("name", TASKS)
def test_shapes_and_state(name):
    env = TASKS[name](5, 4)
    first = env.reset(np.random.default_rng(0))
    n_landmarks = {"spread": 5, "line": 2, "circle": 1}[name]
    assert env.n_landmarks == n_landmarks and env.state_dim == 20 + 2 * n_landmarks
    assert first.state.shape == (4, env.state_dim) and first.state.dtype == np.float32
    np.testing.assert_allclose(first.state[:, :10], env.agent_positions.reshape(4, 10), rtol=1e-6)
    np.testing.assert_array_equal(first.state[:, 10:20], 0.0)
    np.testing.assert_allclose(first.state[:, 20:], env.landmark_positions.reshape(4, -1), rtol=1e-6)
    out = env.step(np.zeros((4, 5), dtype=np.int64))
    assert out.rewards.shape == (4, 5) and out.rewards.dtype == np.float32
    assert out.positions.shape == (4, 5, 2) and out.positions.dtype == np.float32
    assert env.observations().shape == (4, 5, env.obs_dim)
    assert env.n_actions == 5 and env.horizon == 25
    with pytest.raises(NotImplementedError):
        env.cooperative_action()
    assert env.optimal_collective_return() is None


def test_reset_layouts():
    line = LineControl(5, 500)
    line.reset(np.random.default_rng(0))
    lm = line.landmark_positions
    assert np.all(np.abs(lm[:, 0]) <= 0.25) and np.all(np.abs(lm[:, 1]) < 1.0)
    np.testing.assert_allclose(np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1), 1.25)
    circle = CircleControl(5, 500)
    circle.reset(np.random.default_rng(0))
    assert np.all(np.abs(circle.landmark_positions) <= 0.25)
    assert np.all(np.abs(circle.agent_positions) <= 1.0)


# ---------------------------------------------------------------- episodes, errors, determinism
@pytest.mark.parametrize("name", TASKS)
def test_fixed_horizon_truncates_never_terminates(name):
    env = TASKS[name](5, 3)
    env.reset(np.random.default_rng(1))
    for t in range(25):
        out = env.step(np.full((3, 5), UP))
        assert not out.terminated.any() and out.truncated.all() == (t == 24)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((3, 5), dtype=np.int64))


def test_out_of_range_action_names_agent_and_range():
    env = SimpleSpread(5, 2)
    env.reset(np.random.default_rng(0))
    bad = np.zeros((2, 5), dtype=np.int64)
    bad[1, 3] = 5
    with pytest.raises(ValueError, match=r"agent 3: action 5 out of range \[0, 5\) \(episode 1\)"):
        env.step(bad)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((2, 4), dtype=np.int64))


@pytest.mark.parametrize("name", TASKS)
def test_batch_equals_sequential_single_episodes(name):
    cls = TASKS[name]
    batched = cls(5, 3, reward_mode="private")
    batched.reset(np.random.default_rng(4))
    rng = np.random.default_rng(4)
    singles = [cls(5, 1, reward_mode="private") for _ in range(3)]
    for env in singles:
        env.reset(rng)
    actions = np.random.default_rng(9).integers(0, 5, size=(25, 3, 5))
    for t in range(25):
        out = batched.step(actions[t])
        for b, env in enumerate(singles):
            single = env.step(actions[t, b][None])
            np.testing.assert_allclose(out.state[b], single.state[0], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(out.rewards[b], single.rewards[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TASKS)
def test_view_replays_batch_one_env_with_same_seed(name):
    view = ParallelEpisode(partial(TASKS[name], 5))
    env = TASKS[name](5, 1)
    obs, _ = view.reset(seed=21)
    first = env.reset(np.random.default_rng(21))
    np.testing.assert_array_equal(obs["agent_0"], first.state[0])
    actions = np.random.default_rng(2).integers(0, 5, size=(25, 5))
    for t in range(25):
        obs, rewards, _, truncs, _ = view.step({f"agent_{i}": int(actions[t, i]) for i in range(5)})
        out = env.step(actions[t][None])
        np.testing.assert_array_equal(obs["agent_4"], out.state[0])
        assert [rewards[f"agent_{i}"] for i in range(5)] == out.rewards[0].tolist()
    assert all(truncs.values()) and view.agents == []
    other = TASKS[name](5, 1).reset(np.random.default_rng(22)).state
    assert not np.array_equal(other, first.state)


@pytest.mark.parametrize("name", TASKS)
def test_parallel_api_conformance(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        parallel_api_test(ParallelEpisode(partial(TASKS[name], 5)), num_cycles=60)


@pytest.mark.parametrize("name", TASKS)
def test_parallel_seed(name):
    parallel_seed_test(lambda: ParallelEpisode(partial(TASKS[name], 5)), num_cycles=60)


def _loops(fn) -> list[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    kinds = (ast.For, ast.While, ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)
    return [type(node).__name__ for node in ast.walk(tree) if isinstance(node, kinds)]


def test_step_path_has_no_python_loops():
    step_path = [
        mpe_tasks.MpeTask.step,
        mpe_tasks.MpeTask._state,
        mpe_tasks.MpeTask._collision_costs,
        mpe_tasks.MpeTask.observations,
        mpe_tasks.MpeTask._within_vision,
        mpe_tasks.SimpleSpread._rewards,
        mpe_tasks._Formation._rewards,
        mpe_tasks.LineControl._targets,
        mpe_tasks.CircleControl._targets,
        mpe_tasks.MpeTask.reset,
        mpe_tasks.SimpleSpread._layout,
        mpe_tasks.LineControl._layout,
        mpe_tasks.LineControl._on_start,
        mpe_tasks.CircleControl._layout,
        assignment.min_cost_assignment,  # N ≤ 6; the scipy fallback for N > 6 loops over episodes
        assignment.matched_costs,
        *[
            fn
            for _, fn in inspect.getmembers(mpe_physics, inspect.isfunction)
            if fn.__module__ == mpe_physics.__name__
        ],
    ]
    assert {fn.__qualname__: _loops(fn) for fn in step_path if _loops(fn)} == {}


# ---------------------------------------------------------------- private parameters and floors
def test_draw_private_params_is_seeded_installed_and_in_range():
    env = SimpleSpread(5, 1)
    np.testing.assert_array_equal(env.collision_weights, np.ones(5))  # the paper's rule
    np.testing.assert_array_equal(LineControl(5, 1).collision_weights, np.zeros(5))
    w = env.draw_private_params(np.random.default_rng(3))
    assert w.shape == (5,) and np.all((w >= 0.0) & (w < 2.0))
    np.testing.assert_array_equal(env.collision_weights, w)
    np.testing.assert_array_equal(SimpleSpread(5, 1).draw_private_params(np.random.default_rng(3)), w)
    with pytest.raises(ValueError, match="collision weights"):
        SimpleSpread(5, 1, collision_weights=[1.0, -1.0, 0.0, 0.0, 0.0])


def test_floor_is_cached_and_consistent(monkeypatch):
    monkeypatch.setattr(mpe_tasks, "FLOOR_EPISODES", 400)
    team, private = CircleControl(5, 2), CircleControl(5, 2, reward_mode="private")
    value, kind = team.floor_collective_return()
    assert kind == "uniform_random"
    assert team.floor_estimate() is team.floor_estimate()
    assert team.floor_estimate().episodes == 400 and team.floor_estimate().standard_error < 0.02 * abs(value)
    np.testing.assert_allclose(private.floor_collective_return()[0], value, rtol=1e-6)  # Σ private = N · team


def test_spread_team_floor_golden_value():
    estimate = SimpleSpread(5, 1).floor_estimate()
    assert estimate.episodes == 10_000 and estimate.seed == 0
    assert estimate.mean == pytest.approx(-354.066, abs=1e-3)
    assert estimate.standard_error == pytest.approx(0.817, abs=1e-3)
