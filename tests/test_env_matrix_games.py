"""The 2×2 matrix games of DPO App. C: exact J, optima, floors and the one-shot batched env."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.envs import make_env
from confide.envs.matrix_games import MATRIX_GAMES, MatrixGame, MatrixGameEnv, matrix_game

ABCD = [(5, 7, 6, 4), (1, 3, 5, 4), (7, 1, 1, 3), (20, 0, 0, 10)]


@pytest.mark.parametrize(("game", "abcd"), list(zip(MATRIX_GAMES, ABCD, strict=True)))
def test_corner_policies_give_the_payoffs(game, abcd):
    a, b, c, d = abcd
    assert game.expected_return(1, 1) == a  # both play action 0
    assert game.expected_return(1, 0) == b  # agent 1 plays 0, agent 2 plays 1
    assert game.expected_return(0, 1) == c
    assert game.expected_return(0, 0) == d
    assert game.expected_return(0.5, 0.5) == (a + b + c + d) / 4 == game.uniform_random_return()


def test_names_and_optima():
    assert [g.name for g in MATRIX_GAMES] == [f"matrix_game_{i}" for i in range(1, 5)]
    assert [g.optimum() for g in MATRIX_GAMES] == [7, 5, 7, 20]
    assert [g.optimal_policy() for g in MATRIX_GAMES] == [(1, 0), (0, 1), (1, 1), (1, 1)]
    for game in MATRIX_GAMES:
        assert game.expected_return(*game.optimal_policy()) == game.optimum()


def test_expected_return_hand_value_and_broadcasting():
    game = matrix_game("matrix_game_1")
    # p = 0.25, q = 0.5: 0.125·5 + 0.125·7 + 0.375·6 + 0.375·4 = 5.25
    assert game.expected_return(0.25, 0.5) == pytest.approx(5.25)
    grid = game.expected_return(np.array([0.0, 1.0])[:, None], np.array([0.0, 1.0])[None, :])
    np.testing.assert_array_equal(grid, [[4, 6], [7, 5]])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        game.expected_return(1.5, 0.5)


@settings(max_examples=50, deadline=None)
@given(p=st.floats(0, 1), q=st.floats(0, 1), index=st.integers(0, 3))
def test_expected_return_is_an_average_of_payoffs(p, q, index):
    game = MATRIX_GAMES[index]
    j = game.expected_return(p, q)
    assert game.payoff.min() - 1e-9 <= j <= game.optimum() + 1e-9
    joint = np.outer([p, 1 - p], [q, 1 - q])  # [a1, a2] probabilities
    assert j == pytest.approx(float((joint * game.payoff).sum()), abs=1e-12)


def test_game_validation_and_immutability():
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        MatrixGame("bad", np.zeros(3))
    with pytest.raises(ValueError):
        MATRIX_GAMES[0].payoff[0, 0] = 100.0
    with pytest.raises(ValueError, match="unknown matrix game 'nope'; known games: matrix_game_1"):
        matrix_game("nope")


def test_env_pays_the_team_payoff_to_both_agents():
    env = MatrixGameEnv(MATRIX_GAMES[3], batch_size=4)
    first = env.reset(np.random.default_rng(0))
    np.testing.assert_array_equal(first.state, np.zeros((4, 1), dtype=np.float32))
    assert first.positions is None
    result = env.step(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    np.testing.assert_array_equal(result.rewards, [[20, 20], [0, 0], [0, 0], [10, 10]])
    assert result.rewards.dtype == np.float32 and result.state.shape == (4, 1)
    assert result.terminated.all() and not result.truncated.any()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((4, 2), dtype=np.int64))


def test_env_returns_and_floor():
    env = MatrixGameEnv("matrix_game_1", batch_size=1)
    assert env.optimal_collective_return() == 14.0  # 2 agents × 7
    assert env.floor_collective_return() == (11.0, "uniform_random")  # 2 × mean(5, 7, 6, 4)
    env4 = MatrixGameEnv(MATRIX_GAMES[3], batch_size=1)
    assert env4.optimal_collective_return() == 40.0
    assert env4.floor_collective_return() == (15.0, "uniform_random")
    assert env.cooperative_action().tolist() == [[0, 1]]  # game 1's optimum (0, 1) pays 7
    assert MatrixGameEnv(MATRIX_GAMES[1], 3).cooperative_action().tolist() == [[1, 0]] * 3


def test_env_errors():
    env = MatrixGameEnv(MATRIX_GAMES[0], batch_size=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros((2, 2), dtype=np.int64))
    env.reset(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"agent 1: action 2 out of range \[0, 2\)"):
        env.step(np.array([[0, 0], [1, 2]]))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        MatrixGameEnv(MATRIX_GAMES[0], batch_size=0)


def test_registry():
    env = make_env("matrix", 2, 3, game="matrix_game_2")
    assert isinstance(env, MatrixGameEnv) and env.game is MATRIX_GAMES[1] and env.batch_size == 3
    assert make_env("matrix", 2, 1).game is MATRIX_GAMES[0]
    with pytest.raises(ValueError, match="exactly 2 agents"):
        make_env("matrix", 3, 1)
    with pytest.raises(ValueError, match="unexpected arguments for matrix: horizon"):
        make_env("matrix", 2, 1, horizon=3)
