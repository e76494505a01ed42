"""Cleanup: the reconstructed map, the clean beam, and the spawn rules (hand-made maps, safe statistics)."""

from __future__ import annotations

import numpy as np
import pytest

from confide.envs.cleanup import CLEAN, CLEANUP_MAP, NO_COOPERATIVE_ACT, Cleanup
from confide.envs.gridworld import FORWARD, LEFT, RIGHT, STAY, UP, Code

# Row 2 holds the agent (at (2, 1)); rows 1 and 3 are river for the side rays. Rows 5-6, out of the
# beams' reach, stay full of waste so the density stays >= 0.4 and no new waste muddles the checks.
CLEAN_MAP = (
    "@@@@@@@@@@",
    "@RRRRRRRR@",
    "@P RRRRRR@",
    "@RRRRRRRR@",
    "@   B    @",
    "@HHHHHHHH@",
    "@HHHHHHHH@",
    "@@@@@@@@@@",
)
FAR_WASTE = [(r, c) for r in (5, 6) for c in range(1, 9)]

# 5 river cells (density steps of 0.2), 10 apple cells, one agent parked on the right.
SPAWN_MAP = (
    "@@@@@@@@@@@@",
    "@RRRRR P   @",
    "@BBBBBBBBBB@",
    "@@@@@@@@@@@@",
)


def grid_of(env: Cleanup, cells: list[tuple[int, int]]) -> np.ndarray:
    """``[B, H, W]`` bool with ``cells`` set in every episode."""
    out = np.zeros((env.batch_size, env.grid.height, env.grid.width), dtype=bool)
    for r, c in cells:
        out[:, r, c] = True
    return out


def cells_of(dense: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in np.argwhere(dense)}


# ---------------------------------------------------------------- the reconstructed map
def test_reconstructed_map_facts():
    assert len(CLEANUP_MAP) == 11 and {len(r) for r in CLEANUP_MAP} == {18}
    env = Cleanup()
    assert (env.n_agents, env.batch_size, env.horizon, env.firing) == (5, 1, 100, False)
    assert len(env.spawn_cells) == 6 and len(env.river_cells) == 48 and len(env.apple_cells) == 39
    assert len(env.walkable) == 144
    assert env.state_dim == 39 + 48 + 5 * 144 + 5 * 4 == 827
    assert env.action_names[CLEAN] == "clean" and env.n_actions == 8
    assert Cleanup(firing=True).n_actions == 9 and Cleanup(firing=True).action_names[8] == "fire"
    env.reset(np.random.default_rng(0))
    assert env.waste.sum() == 22
    np.testing.assert_allclose(env.waste_density(), 22 / 48)
    assert env.waste_density()[0] == pytest.approx(0.458, abs=5e-4)
    assert not env.apples.any()  # apple cells start empty


def test_full_map_grows_nothing_until_cleaned():
    env = Cleanup(5, 64)
    env.reset(np.random.default_rng(1))
    for _ in range(env.horizon):
        result = env.step(np.full((64, 5), STAY))
    assert not env.apples.any() and result.rewards.sum() == 0
    assert env.waste.sum(axis=(1, 2)).tolist() == [22] * 64  # above the threshold waste stops too


# ---------------------------------------------------------------- the clean beam
def clean_once(waste, others=(), facing=RIGHT):
    """One agent at (2, 1) cleans; optional other agents stay. Returns the waste left."""
    n = 1 + len(others)
    env = Cleanup(n, 1, ascii_map=CLEAN_MAP)
    positions = np.array([[(2, 1), *others]])
    waste_grid = grid_of(env, [*waste, *FAR_WASTE])
    env.reset_to(np.random.default_rng(0), positions, np.array([[facing] * n]), waste=waste_grid)
    env.step(np.array([[CLEAN] + [STAY] * (n - 1)]))
    assert env.waste[0, 5:7, 1:9].all()
    return cells_of(env.waste[0, :5])


def test_each_ray_clears_the_first_waste_it_reaches_and_stops():
    every = [(r, c) for r in (1, 2, 3) for c in range(1, 9) if (r, c) not in {(2, 1), (2, 2)}]
    left = clean_once(every)
    cleared = set(every) - left
    assert cleared == {(1, 1), (2, 3), (3, 1)}  # side rays start beside the agent; (2, 2) is dry land


def test_clean_beam_length_and_width():
    assert clean_once([(2, 6)]) == set()  # the centre ray's 5th cell
    assert clean_once([(2, 7)]) == {(2, 7)}  # 6 cells ahead: out of reach
    assert clean_once([(1, 5), (3, 5)]) == set()  # side rays: beside cell + 4 ahead
    assert clean_once([(1, 6), (3, 6)]) == {(1, 6), (3, 6)}


def test_clean_beam_stops_at_agents_and_walls():
    assert clean_once([(2, 5)], others=[(2, 4)]) == {(2, 5)}  # the agent at (2, 4) absorbs the ray
    assert clean_once([(2, 4)], others=[(2, 4)]) == set()  # ...and its own cell is cleaned
    assert clean_once([(1, 1), (3, 1)], facing=UP) == {(3, 1)}  # up: centre hits (1, 1), side rays dry
    assert clean_once([(2, 3)], facing=LEFT) == {(2, 3)}  # into the wall: nothing ahead


def test_cooperative_action_is_clean_when_cleaning_would_clear_waste():
    env = Cleanup(2, 2, ascii_map=CLEAN_MAP)
    waste = grid_of(env, [(2, 5), *FAR_WASTE])
    waste[1, 2, 5] = False
    positions = np.array([[(2, 1), (4, 8)], [(2, 1), (4, 8)]])
    env.reset_to(np.random.default_rng(0), positions, np.array([[RIGHT, UP]] * 2), waste=waste)
    coop = env.cooperative_action()
    assert coop.dtype == np.int64
    np.testing.assert_array_equal(coop, [[CLEAN, NO_COOPERATIVE_ACT], [NO_COOPERATIVE_ACT] * 2])
    env.step(np.array([[CLEAN, STAY], [CLEAN, STAY]]))
    assert not env.waste[:, 2, 5].any()


# ---------------------------------------------------------------- spawn rules
def spawn_env(batch: int, waste: list[tuple[int, int]], apples=()) -> Cleanup:
    env = Cleanup(1, batch, ascii_map=SPAWN_MAP)
    positions = np.full((batch, 1, 2), (1, 7))
    apples_grid = grid_of(env, list(apples))
    env.reset_to(
        np.random.default_rng(3), positions, np.full((batch, 1), UP), apples_grid, waste=grid_of(env, waste)
    )
    return env


@pytest.mark.parametrize("waste", [[(1, 1), (1, 2)], [(1, 1), (1, 2), (1, 3)]])  # density 0.4 and 0.6
def test_nothing_spawns_at_or_above_the_threshold(waste):
    env = spawn_env(200, waste)
    for _ in range(50):
        env.step(np.full((200, 1), STAY))
    assert not env.apples.any()
    assert (env.waste == grid_of(env, waste)).all()


@pytest.mark.parametrize(("waste", "p_apple"), [([], 0.05), ([(1, 1)], 0.025)])  # d = 0, 0.2
def test_apple_growth_rate_below_the_threshold(waste, p_apple):
    batch, cells = 4000, 10
    env = spawn_env(batch, waste)
    env.step(np.full((batch, 1), STAY))
    grown = env.apples.sum()
    sd = np.sqrt(batch * cells * p_apple * (1 - p_apple))
    assert abs(grown - batch * cells * p_apple) < 6 * sd  # 6 sd: a false alarm ~1e-9


def test_one_waste_cell_spawns_with_probability_one_minus_half_to_the_k():
    batch = 4000
    env = spawn_env(batch, [(1, 1)])  # k = 4 clean river cells
    env.step(np.full((batch, 1), STAY))
    new = env.waste.sum(axis=(1, 2)) - 1
    assert set(np.unique(new)) <= {0, 1}  # at most one per step
    p = 1 - 0.5**4
    assert abs(new.mean() - p) < 6 * np.sqrt(p * (1 - p) / batch)
    where = env.waste[:, 1, 2:6].sum(axis=0) / new.sum()  # uniform over the 4 clean cells
    np.testing.assert_allclose(where, 0.25, atol=6 * np.sqrt(0.25 * 0.75 / new.sum()))


def test_density_is_measured_after_cleaning():
    """Cleaning 2 of 5 wastes to 1 in the same step opens apple growth at once (d = 0.2)."""
    env = Cleanup(1, 2000, ascii_map=SPAWN_MAP)
    positions = np.full((2000, 1, 2), (1, 3))  # on the river, facing left: the centre ray hits (1, 2)
    waste = grid_of(env, [(1, 1), (1, 2)])
    env.reset_to(np.random.default_rng(0), positions, np.full((2000, 1), LEFT), waste=waste)
    env.step(np.full((2000, 1), CLEAN))
    assert env.waste.sum(axis=(1, 2)).max() <= 2  # one left, at most one new
    assert env.apples.sum() > 0  # at d = 0.4 nothing could grow


def test_no_apple_grows_under_an_agent_and_eating_pays():
    env = Cleanup(2, 3000, ascii_map=SPAWN_MAP, apple_values=[1.5, 1.0])
    positions = np.tile([[(2, 1), (1, 7)]], (3000, 1, 1))
    env.reset_to(np.random.default_rng(0), positions, np.full((3000, 2), RIGHT), waste=grid_of(env, []))
    for _ in range(20):
        env.step(np.full((3000, 2), STAY))
    assert not env.apples[:, 2, 1].any() and env.apples[:, 2, 2].any()
    has_apple = env.apples[:, 2, 2].copy()
    result = env.step(np.tile([FORWARD, STAY], (3000, 1)))  # agent 0 steps right onto (2, 2)
    np.testing.assert_array_equal(result.rewards[:, 0], np.where(has_apple, 1.5, 0.0))
    assert not env.apples[:, 2, 2].any() and (result.rewards[:, 1] == 0).all()


def test_observations_show_waste_river_and_stream():
    env = Cleanup(1, 1)
    env.reset_to(np.random.default_rng(0), np.array([[(5, 9)]]), np.array([[UP]]))  # in the stream rows
    view = env.observations()[0, 0]
    assert view[7, 7] == Code.FIRST_AGENT
    assert view[7, 8] == Code.STREAM and view[7, 6] == Code.STREAM
    codes = set(np.unique(view).tolist())
    assert {Code.WASTE, Code.RIVER, Code.WALL, Code.OUTSIDE, Code.EMPTY} <= codes
