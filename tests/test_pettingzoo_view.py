"""The PettingZoo ParallelEnv view: conformance, seeding, and agreement with the batched env."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test

from confide.envs import make_env
from confide.envs.matrix_games import MatrixGameEnv
from confide.envs.pettingzoo_view import ParallelEpisode
from confide.envs.predation import CooperativePredation

FACTORIES = {
    "predation_ss": partial(CooperativePredation, 4, scheme="ss", horizon=10),
    "predation_as": partial(make_env, "predation", 8, scheme="as"),
    "matrix": partial(MatrixGameEnv, "matrix_game_4"),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_parallel_api_conformance(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # PettingZoo reports API problems as warnings
        parallel_api_test(ParallelEpisode(FACTORIES[name]), num_cycles=100)


@pytest.mark.parametrize("name", FACTORIES)
def test_parallel_seed(name):
    parallel_seed_test(lambda: ParallelEpisode(FACTORIES[name]), num_cycles=100)


def test_spaces_and_agents():
    view = ParallelEpisode(FACTORIES["predation_as"])
    assert view.possible_agents == [f"agent_{i}" for i in range(8)]
    assert view.metadata["name"] == "CooperativePredation"
    box = view.observation_space("agent_3")
    assert isinstance(box, spaces.Box) and box.shape == (8,) and box.dtype == np.float32
    assert box.low.min() == -1 and box.high.max() == 1
    assert view.action_space("agent_0") == spaces.Discrete(2)
    assert view.action_space("agent_0") is not view.action_space("agent_1")
    with pytest.raises(ValueError, match="unknown agent 'agent_8'"):
        view.action_space("agent_8")


def test_view_replays_batched_env_with_batch_one():
    seed, n = 123, 4
    view = ParallelEpisode(FACTORIES["predation_ss"])
    batched = CooperativePredation(n, 1, scheme="ss", horizon=10)
    actions = np.random.default_rng(5).integers(0, 2, size=(10, n))
    obs, infos = view.reset(seed=seed)
    first = batched.reset(np.random.default_rng(seed))
    assert set(infos) == set(view.possible_agents)
    for agent in view.possible_agents:
        np.testing.assert_array_equal(obs[agent], first.state[0])
        assert obs[agent].dtype == np.float32
        assert view.observation_space(agent).contains(obs[agent])
    for t in range(10):
        obs, rewards, terms, truncs, _ = view.step({a: int(actions[t, i]) for i, a in enumerate(view.agents)})
        result = batched.step(actions[t][None])
        for i, agent in enumerate(view.possible_agents):
            np.testing.assert_array_equal(obs[agent], result.state[0])
            assert rewards[agent] == result.rewards[0, i] and isinstance(rewards[agent], float)
            assert truncs[agent] == (t == 9) and terms[agent] is False
    assert view.agents == []
    with pytest.raises(RuntimeError, match="call reset"):
        view.step({})


def test_unseeded_resets_continue_the_generator_like_a_batch():
    view = ParallelEpisode(partial(CooperativePredation, 3))
    starts = [view.reset(seed=9)[0]["agent_0"]] + [view.reset()[0]["agent_0"] for _ in range(3)]
    batched = CooperativePredation(3, 4).reset(np.random.default_rng(9)).state
    np.testing.assert_array_equal(np.stack(starts), batched)


def test_missing_action_names_the_agent():
    view = ParallelEpisode(FACTORIES["predation_ss"])
    view.reset(seed=0)
    with pytest.raises(ValueError, match="missing actions for agent_2"):
        view.step({"agent_0": 0, "agent_1": 1, "agent_3": 0})
    with pytest.raises(ValueError, match=r"agent 1: action 4 out of range \[0, 2\)"):
        view.step({"agent_0": 0, "agent_1": 4, "agent_2": 0, "agent_3": 0})


def test_matrix_view_is_one_shot():
    view = ParallelEpisode(FACTORIES["matrix"])
    view.reset(seed=0)
    _, rewards, terms, truncs, _ = view.step({"agent_0": 0, "agent_1": 0})
    assert rewards == {"agent_0": 20.0, "agent_1": 20.0}
    assert all(terms.values()) and not any(truncs.values()) and view.agents == []
