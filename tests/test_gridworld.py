"""Grid machinery shared by Cleanup and Harvest: maps, relative moves, conflicts, beams, views."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pettingzoo.test import parallel_api_test, parallel_seed_test

from confide.envs.cleanup import Cleanup
from confide.envs.gridworld import (
    BACKWARD,
    DOWN,
    FORWARD,
    LEFT,
    RIGHT,
    STAY,
    STEP_LEFT,
    STEP_RIGHT,
    TURN_CCW,
    TURN_CW,
    UP,
    Code,
    GridMap,
    cast_beams,
    draw_private_params,
    egocentric_views,
    move_targets,
    resolve_moves,
    turn,
)
from confide.envs.harvest import Harvest
from confide.envs.pettingzoo_view import ParallelEpisode

OPEN = GridMap.parse(
    ["@@@@@@@@@", "@       @", "@       @", "@       @", "@   @   @", "@       @", "@@@@@@@@@"]
)
W = OPEN.width


def at(row: int, col: int) -> int:
    return row * W + col


# ---------------------------------------------------------------- maps
@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["@@@", "@ @", "@@"], "equal length"),
        (["@@@", "@X@", "@@@"], r"unknown map characters \['X'\]"),
        (["@@@", "  @", "@@@"], "enclosed by walls"),
    ],
)
def test_map_validation(rows, message):
    with pytest.raises(ValueError, match=message):
        GridMap.parse(rows)


def test_map_cells_slots_and_neighbourhood():
    grid = GridMap.parse(["@@@@@", "@AAB@", "@P A@", "@@@@@"])
    apples = grid.cells("AB")
    np.testing.assert_array_equal(apples, [6, 7, 8, 13])
    np.testing.assert_array_equal(grid.slots(apples)[[6, 8, 11, 13]], [0, 2, -1, 3])
    table = grid.neighbourhood(apples)  # padded with 4
    as_sets = [set(row) - {4} for row in table.tolist()]
    assert as_sets == [{1}, {0, 2, 3}, {1, 3}, {1, 2}]
    assert grid.terrain[11] == Code.EMPTY and grid.walls[0] and not grid.walls[6]


# ---------------------------------------------------------------- turning and moving
def test_turns_are_clockwise_and_counterclockwise():
    o = np.array([[UP, RIGHT, DOWN, LEFT]])
    np.testing.assert_array_equal(turn(o, np.full((1, 4), TURN_CW)), [[RIGHT, DOWN, LEFT, UP]])
    np.testing.assert_array_equal(turn(o, np.full((1, 4), TURN_CCW)), [[LEFT, UP, RIGHT, DOWN]])
    np.testing.assert_array_equal(turn(o, np.full((1, 4), FORWARD)), o)


@pytest.mark.parametrize(
    ("facing", "expected"),  # (row, col) steps for step_left, step_right, forward, backward
    [
        (UP, [(0, -1), (0, 1), (-1, 0), (1, 0)]),
        (RIGHT, [(-1, 0), (1, 0), (0, 1), (0, -1)]),
        (DOWN, [(0, 1), (0, -1), (1, 0), (-1, 0)]),
        (LEFT, [(1, 0), (-1, 0), (0, -1), (0, 1)]),
    ],
)
def test_moves_are_relative_to_facing(facing, expected):
    pos = np.full((1, 7), at(2, 2))
    actions = np.array([[STEP_LEFT, STEP_RIGHT, FORWARD, BACKWARD, STAY, TURN_CW, TURN_CCW]])
    targets = move_targets(OPEN, pos, np.full((1, 7), facing), actions)
    steps = [(dr, dc) for dr, dc in expected] + [(0, 0)] * 3
    np.testing.assert_array_equal(targets, [[at(2 + dr, 2 + dc) for dr, dc in steps]])


def test_walls_block_moves():
    pos = np.array([[at(1, 1), at(3, 4), at(5, 7)]])  # top-left corner, above the pillar, right wall
    facing, actions = np.array([[UP, DOWN, DOWN]]), np.array([[FORWARD, FORWARD, STEP_LEFT]])
    np.testing.assert_array_equal(move_targets(OPEN, pos, facing, actions), pos)


# ---------------------------------------------------------------- conflicts
def resolve(pos, target, priority=None):
    pos, target = np.array([pos]), np.array([target])
    priority = np.arange(pos.shape[1], dtype=float)[None] if priority is None else np.array([priority])
    return resolve_moves(pos, target, priority)[0].tolist()


def test_free_moves_chains_and_rotations_go_through():
    assert resolve([1, 5], [2, 6]) == [2, 6]
    assert resolve([1, 2, 3], [2, 3, 4]) == [2, 3, 4]  # a chain into cells being vacated
    assert resolve([10, 11, 21, 20], [11, 21, 20, 10]) == [11, 21, 20, 10]  # a 4-cycle rotates


def test_blocked_moves():
    assert resolve([1, 2], [2, 2]) == [1, 2]  # into an agent that stays
    assert resolve([1, 2], [2, 1]) == [1, 2]  # swaps are refused
    assert resolve([1, 2, 3], [2, 3, 3]) == [1, 2, 3]  # the block cascades down the chain
    assert resolve([1, 2, 3, 9], [2, 3, 2, 8]) == [1, 2, 3, 8]  # swap partner 2↔3 blocks the chain


def test_contested_cell_goes_to_the_higher_priority():
    assert resolve([1, 3], [2, 2], [0.9, 0.1]) == [2, 3]
    assert resolve([1, 3], [2, 2], [0.1, 0.9]) == [1, 2]
    assert resolve([1, 3, 2], [2, 2, 4], [0.1, 0.9, 0.5]) == [1, 2, 4]  # into a vacated cell


def test_contested_cell_goes_to_a_uniform_random_contender():
    rng = np.random.default_rng(0)
    n = 4000
    pos = np.tile([1, 3, 11], (n, 1))
    new = resolve_moves(pos, np.tile([2, 2, 2], (n, 1)), rng.random((n, 3)))
    winners = (new == 2).argmax(axis=1)
    assert ((new == 2).sum(axis=1) == 1).all()
    counts = np.bincount(winners, minlength=3) / n
    np.testing.assert_allclose(counts, 1 / 3, atol=0.04)  # sd 0.0075: > 5 sd


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_resolution_invariants(data, n, seed):
    """No shared cells; each agent ends on its cell or its target; every blocked mover is in a swap or
    faces an agent on its target; an unblocked world is a fixed point."""
    rng = np.random.default_rng(seed)
    free = [at(r, c) for r in range(1, 4) for c in range(1, 4)]  # a 3x3 room keeps conflicts frequent
    pos = rng.choice(free, size=n, replace=False)
    moves = data.draw(st.lists(st.sampled_from([0, 1, -1, W, -W]), min_size=n, max_size=n))
    target = pos + np.array(moves)
    target = np.where(np.isin(target, free), target, pos)
    new = resolve_moves(pos[None], target[None], rng.random((1, n)))[0]
    assert len(set(new.tolist())) == n
    assert np.all((new == pos) | (new == target))
    for i in np.flatnonzero((new == pos) & (target != pos)):
        swapped = any(target[j] == pos[i] and target[i] == pos[j] for j in range(n))
        assert swapped or target[i] in new.tolist()
    np.testing.assert_array_equal(resolve_moves(new[None], new[None], rng.random((1, n)))[0], new)


# ---------------------------------------------------------------- beams
def covered_cells(pos, facing, agents=(), episode=0):
    absorbing = np.zeros((1, OPEN.n_cells), dtype=bool)
    absorbing[0, list(agents)] = True
    cells, covered = cast_beams(OPEN, np.array([episode]), np.array([pos]), np.array([facing]), absorbing)
    return set(cells[covered].tolist())


def test_beam_shape_length_and_width():
    # facing right from (2, 1): centre ray covers (2, 2..6); side rays (1, 1..5) and (3, 1..5)
    expected = {at(2, c) for c in range(2, 7)} | {at(r, c) for r in (1, 3) for c in range(1, 6)}
    assert covered_cells(at(2, 1), RIGHT) == expected
    # facing up from (5, 2): side rays start beside the agent, all stop before the top wall
    expected = {at(r, 2) for r in range(1, 5)} | {at(r, c) for r in range(1, 6) for c in (1, 3)}
    assert covered_cells(at(5, 2), UP) == expected


def test_beam_stops_at_walls_and_after_agents():
    # facing down from (1, 4): the pillar at (4, 4) stops the centre ray after (2, 4), (3, 4)
    got = covered_cells(at(1, 4), DOWN)
    assert {at(2, 4), at(3, 4)} <= got and at(4, 4) not in got and at(5, 4) not in got
    # an agent at (2, 4) absorbs the centre ray: it is covered, the cells behind are not
    got = covered_cells(at(1, 4), DOWN, agents=[at(2, 4)])
    assert at(2, 4) in got and at(3, 4) not in got
    assert {at(r, 3) for r in range(1, 6)} <= got  # the side rays pass by


def test_beams_read_their_own_episode():
    absorbing = np.zeros((2, OPEN.n_cells), dtype=bool)
    absorbing[1, at(2, 3)] = True
    cells, covered = cast_beams(
        OPEN, np.array([0, 1]), np.array([at(2, 1)] * 2), np.array([RIGHT] * 2), absorbing
    )
    assert at(2, 4) in cells[0][covered[0]] and at(2, 4) not in cells[1][covered[1]]


# ---------------------------------------------------------------- views
def test_views_rotate_with_facing_and_pad_outside():
    codes = np.repeat(OPEN.terrain[None], 1, axis=0).copy()
    codes[0, at(1, 2)] = Code.APPLE  # north of the agent at (2, 2), two cells from the left wall
    pos = np.full((1, 4), at(2, 2))
    views = egocentric_views(OPEN, codes, pos, np.array([[UP, RIGHT, DOWN, LEFT]]), view_size=5)
    c = 2
    assert views[0, 0, c - 1, c] == Code.APPLE  # facing up: ahead
    assert views[0, 1, c, c - 1] == Code.APPLE  # facing right: north is to the left
    assert views[0, 2, c + 1, c] == Code.APPLE  # facing down: behind
    assert views[0, 3, c, c + 1] == Code.APPLE  # facing left: north is to the right
    assert views[0, 0, 0, 0] == Code.WALL  # (0, 0) is the map's corner
    wide = egocentric_views(OPEN, codes, pos[:, :1], np.array([[UP]]), view_size=15)
    assert wide.shape == (1, 1, 15, 15) and wide.dtype == np.uint8
    assert wide[0, 0, 0, 0] == Code.OUTSIDE and wide[0, 0, 7, 7] == codes[0, at(2, 2)]


# ---------------------------------------------------------------- the shared episode shell, both games
GAMES = {"cleanup": Cleanup, "harvest": Harvest}


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("firing", [False, True])
def test_parallel_api_conformance(name, firing):
    factory = partial(GAMES[name], 5, firing=firing, horizon=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # PettingZoo reports API problems as warnings
        parallel_api_test(ParallelEpisode(factory), num_cycles=100)


@pytest.mark.parametrize("name", GAMES)
def test_parallel_seed(name):
    parallel_seed_test(lambda: ParallelEpisode(partial(GAMES[name], 5, firing=True)), num_cycles=100)


@pytest.mark.parametrize("name", GAMES)
def test_batch_one_env_replays_the_parallel_view(name):
    """The precise determinism statement: a batch-1 env reset from ``default_rng(s)`` and the
    PettingZoo view reset with ``seed=s`` give identical states, rewards and flags under the same
    actions (the env keeps drawing from that generator)."""
    seed, horizon = 17, 40
    view = ParallelEpisode(partial(GAMES[name], 5, firing=True, horizon=horizon))
    batched = GAMES[name](5, 1, firing=True, horizon=horizon)
    obs, _ = view.reset(seed=seed)
    np.testing.assert_array_equal(obs["agent_0"], batched.reset(np.random.default_rng(seed)).state[0])
    actions = np.random.default_rng(1).integers(0, batched.n_actions, size=(horizon, 5))
    for t in range(horizon):
        obs, rewards, terms, truncs, _ = view.step({f"agent_{i}": int(a) for i, a in enumerate(actions[t])})
        result = batched.step(actions[t][None])
        np.testing.assert_array_equal(obs["agent_3"], result.state[0])
        assert [rewards[f"agent_{i}"] for i in range(5)] == result.rewards[0].tolist()
        assert truncs["agent_0"] == (t == horizon - 1) and not terms["agent_0"]
    assert view.agents == []


def trajectory(env, seed: int) -> list[np.ndarray]:
    actions = np.random.default_rng(99).integers(0, env.n_actions, size=(env.horizon, env.batch_size, 5))
    out = [env.reset(np.random.default_rng(seed)).state]
    for a in actions:
        result = env.step(a)
        out += [result.state, result.rewards, result.positions]
    return out + [env.observations(), env.cooperative_action()]


@pytest.mark.parametrize("name", GAMES)
def test_same_seed_same_trajectory_and_different_seeds_differ(name):
    make = partial(GAMES[name], 5, 8, firing=True, horizon=50)
    a, b, c = trajectory(make(), 3), trajectory(make(), 3), trajectory(make(), 4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("name", GAMES)
def test_state_positions_views_and_flags(name):
    env = GAMES[name](5, 4, horizon=3)
    first = env.reset(np.random.default_rng(0))
    n_walk = len(env.walkable)
    for result in [first] + [env.step(np.full((4, 5), STAY)) for _ in range(3)]:
        state = result.state
        assert state.shape == (4, env.state_dim) and state.dtype == np.float32
        assert set(np.unique(state).tolist()) <= {0.0, 1.0}
        agents = state[:, -5 * (n_walk + 4) : -20].reshape(4, 5, n_walk)
        np.testing.assert_array_equal(agents.sum(axis=2), 1)  # one cell per agent
        np.testing.assert_array_equal(agents.argmax(axis=2), env.walk_slot[env.cells])
        np.testing.assert_array_equal(state[:, -20:].reshape(4, 5, 4).argmax(axis=2), env.orientations)
        assert result.positions.shape == (4, 5, 2) and result.positions.dtype == np.float32
        assert (result.positions >= 0).all() and (result.positions <= 1).all()
    assert result.truncated.all() and not result.terminated.any()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.full((4, 5), STAY))
    views = env.observations()
    assert views.shape == (4, 5, 15, 15) and views.dtype == np.uint8 and views.max() < env.n_codes
    np.testing.assert_array_equal(views[:, :, 7, 7], np.tile(Code.FIRST_AGENT + np.arange(5), (4, 1)))


@pytest.mark.parametrize("name", GAMES)
def test_errors(name):
    env = GAMES[name](5, 2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros((2, 5), dtype=np.int64))
    env.reset(np.random.default_rng(0))
    bad = np.zeros((2, 5), dtype=np.int64)
    bad[1, 3] = env.n_actions
    with pytest.raises(
        ValueError, match=rf"agent 3: action {env.n_actions} out of range \[0, {env.n_actions}\)"
    ):
        env.step(bad)
    with pytest.raises(ValueError, match="must be integers"):
        env.step(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="need as many spawn points"):
        GAMES[name](10, 1).reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match="apple_values must be 5 finite numbers"):
        GAMES[name](5, 1, apple_values=[1.0, 2.0])
    with pytest.raises(ValueError, match="distinct non-wall cells"):
        env.reset_to(
            np.random.default_rng(0), np.zeros((2, 5, 2), dtype=np.int64), np.zeros((2, 5), dtype=np.int64)
        )


@pytest.mark.parametrize(
    ("name", "firing", "documented"),
    [
        ("cleanup", False, 0.42),
        ("cleanup", True, -1197.0),
        ("harvest", False, 31.58),
        ("harvest", True, -580.9),
    ],
)
def test_returns_and_private_params(name, firing, documented):
    env = GAMES[name](firing=firing)
    assert env.optimal_collective_return() is None
    value, kind = env.floor_collective_return()
    assert kind == "uniform_random"
    assert GAMES[name](firing=firing).floor_collective_return() == (value, kind)  # cached
    se = env.floor_standard_error()
    assert 0 < se < max(1.0, 0.05 * abs(value))
    assert abs(value - documented) < 4 * se  # the figures in the module docstrings
    values = draw_private_params(np.random.default_rng(0), 5)
    assert values.shape == (5,) and (values >= 0.5).all() and (values <= 1.5).all()
    np.testing.assert_array_equal(values, draw_private_params(np.random.default_rng(0), 5))
