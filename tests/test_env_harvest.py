"""Harvest: the reconstructed map, eating, regrowth by neighbourhood, the penalty beam, IMR's act."""

from __future__ import annotations

import numpy as np
import pytest

from confide.envs.gridworld import FORWARD, LEFT, RIGHT, STAY, STEP_LEFT, UP
from confide.envs.harvest import HARVEST_MAP, NO_COOPERATIVE_ACT, REGROWTH_PROBS, Harvest

# Empty apple cells (B) at (2, 2), (2, 5), (2, 10), (2, 16), (2, 22) with 0, 1, 2, 3 and 8 apples
# (A) in their 3x3 neighbourhoods; the agent waits at (4, 1).
REGROW_MAP = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@    A    A    AAA   AAA  @",
    "@ B  B    BA    B    ABA  @",
    "@                    AAA  @",
    "@P                        @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)
CENTRES = [(2, 2), (2, 5), (2, 10), (2, 16), (2, 22)]

OPEN_MAP = ("@@@@@@@@@@", "@        @", "@        @", "@        @", "@P       @", "@@@@@@@@@@")


def test_reconstructed_map_facts():
    assert len(HARVEST_MAP) == 7 and {len(r) for r in HARVEST_MAP} == {38}
    env = Harvest()
    assert (env.n_agents, env.batch_size, env.horizon, env.firing) == (5, 1, 100, False)
    assert len(env.apple_cells) == 58 and len(env.spawn_cells) == 9 and len(env.walkable) == 180
    assert env.state_dim == 58 + 5 * 180 + 5 * 4 == 978
    assert env.n_actions == 7 and Harvest(firing=True).n_actions == 8
    assert Harvest(firing=True).action_names[7] == "fire"
    env.reset(np.random.default_rng(0))
    assert env.apples.sum() == 58  # every apple cell starts full


@pytest.mark.parametrize("batch", [20000])
def test_regrowth_probability_by_neighbourhood_count(batch):
    env = Harvest(1, batch, ascii_map=REGROW_MAP)
    env.reset_to(np.random.default_rng(5), np.full((batch, 1, 2), (4, 1)), np.full((batch, 1), UP))
    counts = env.neighbour_counts()[0, env.apple_slot[[r * env.grid.width + c for r, c in CENTRES]]]
    np.testing.assert_array_equal(counts, [0, 1, 2, 3, 8])
    env.step(np.full((batch, 1), STAY))
    for (r, c), k in zip(CENTRES, counts, strict=True):
        p = REGROWTH_PROBS[min(k, 3)]
        rate = env.apples[:, r, c].mean()
        assert abs(rate - p) <= 6 * np.sqrt(p * (1 - p) / batch), (k, rate, p)  # 6 sd; exact 0 for k = 0
    assert (
        env.apples.sum() - env.apples[:, [r for r, _ in CENTRES], [c for _, c in CENTRES]].sum() == 14 * batch
    )


def test_neighbours_are_counted_before_this_steps_regrowth():
    # Y = (2, 2) has 3 apples around and regrows at 0.05; X = (3, 3) touches only Y, so k = 0: X may
    # never regrow in the first step, even in the episodes where Y does.
    rows = ("@@@@@@@", "@AAA  @", "@ B   @", "@  B  @", "@P    @", "@@@@@@@")
    batch = 20000
    env = Harvest(1, batch, ascii_map=rows)
    env.reset_to(np.random.default_rng(2), np.full((batch, 1, 2), (4, 1)), np.full((batch, 1), UP))
    env.step(np.full((batch, 1), STAY))
    assert env.apples[:, 2, 2].sum() > 500 and not env.apples[:, 3, 3].any()


def test_eating_pays_the_private_value_and_apples_never_regrow_under_agents():
    rows = ("@@@@@@", "@AAA @", "@ B  @", "@P   @", "@@@@@@")
    batch = 4000
    env = Harvest(2, batch, ascii_map=rows, apple_values=[0.5, 1.25])
    positions = np.tile([[(2, 2), (2, 1)]], (batch, 1, 1))  # agent 0 sits on the empty apple cell
    env.reset_to(np.random.default_rng(0), positions, np.full((batch, 2), UP))
    for _ in range(30):
        env.step(np.full((batch, 2), STAY))
    assert not env.apples[:, 2, 2].any()
    result = env.step(np.full((batch, 2), FORWARD))  # both step up onto apples
    np.testing.assert_array_equal(result.rewards, np.tile([[0.5, 1.25]], (batch, 1)).astype(np.float32))
    assert not env.apples[:, 1, 1].any() and not env.apples[:, 1, 2].any() and env.apples[:, 1, 3].all()


# ---------------------------------------------------------------- penalty beam (firing=True)
def fire(others, firers=(0,), facing=None):
    """Agent 0 at (2, 1) (and other listed firers) fire; returns the step's rewards ``[N]``."""
    n = 1 + len(others)
    env = Harvest(n, 1, ascii_map=OPEN_MAP, firing=True)
    facing = [RIGHT] * n if facing is None else facing
    env.reset_to(np.random.default_rng(0), np.array([[(2, 1), *others]]), np.array([facing]))
    actions = np.full((1, n), STAY)
    actions[0, list(firers)] = env.fire_action
    return env.step(actions).rewards[0].tolist()


def test_penalty_beam_costs_and_reach():
    # (2, 6): 5th cell of the centre ray; (1, 5) and (3, 5): 5th cells of the side rays; (3, 6): beyond
    assert fire([(2, 6), (1, 5), (3, 5), (3, 6), (2, 7)]) == [-1, -50, -50, -50, 0, 0]
    assert fire([(1, 1), (3, 1)]) == [-1, -50, -50]  # the cells beside the firer are hit


def test_penalty_beam_stops_at_the_first_agent_and_hits_add_up():
    assert fire([(2, 3), (2, 5)]) == [-1, -50, 0]
    # agent 1 at (2, 3) between firer 0 (facing right) and firer 2 at (2, 5) (facing left): both hit
    # it and it shields each firer from the other
    assert fire([(2, 3), (2, 5)], firers=(0, 2), facing=[RIGHT, UP, LEFT]) == [-1, -100, -1]


def test_fire_is_not_an_action_when_firing_is_off():
    env = Harvest(2, 1, ascii_map=OPEN_MAP)
    env.reset_to(np.random.default_rng(0), np.array([[(2, 1), (2, 2)]]), np.array([[RIGHT, RIGHT]]))
    with pytest.raises(ValueError, match=r"agent 1: action 7 out of range \[0, 7\)"):
        env.step(np.array([[0, 7]]))


# ---------------------------------------------------------------- IMR's cooperative act
def test_cooperative_action_is_stay_beside_a_scarce_apple():
    rows = ("@@@@@@@@@@", "@ A    AA@", "@      AA@", "@P       @", "@@@@@@@@@@")
    env = Harvest(3, 1, ascii_map=rows)
    positions = np.array([[(2, 2), (3, 8), (3, 4)]])  # under the lone apple; under the 2x2; nowhere
    env.reset_to(np.random.default_rng(0), positions, np.array([[UP, RIGHT, UP]]))
    coop = env.cooperative_action()
    assert coop.dtype == np.int64
    np.testing.assert_array_equal(coop, [[STAY, NO_COOPERATIVE_ACT, NO_COOPERATIVE_ACT]])
    env.reset_to(np.random.default_rng(0), positions, np.array([[RIGHT, UP, UP]]))
    np.testing.assert_array_equal(env.cooperative_action()[0, 0], STAY)  # whatever the facing
    result = env.step(np.array([[STEP_LEFT, FORWARD, STAY]]))  # facing right, step_left goes up
    assert result.rewards[0].tolist() == [1.0, 1.0, 0.0]  # agent 0 defects, agent 1 eats from plenty
