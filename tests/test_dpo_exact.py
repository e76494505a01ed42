"""The exact DPO iteration (Eq. 17) on DPO App. C's matrix games: golden values, decision 7, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.core.dpo_exact import (
    FIG11_ITERATIONS,
    FIG11_STARTS,
    PROB_FLOOR,
    bernoulli_kl,
    dpo_exact_step,
    fig11_traces,
    individual_advantage,
    individual_objective,
    joint_value,
    plot_dpo_exact,
    run_dpo_exact,
    theorem_m_hat,
)
from confide.envs.matrix_games import MATRIX_GAMES

STARTS = [(0.5, 0.5), (0.3, 0.7), (0.95, 0.1), (0.05, 0.9), (0.2, 0.2), (0.8, 0.6)]


def eq12_gap(payoff, p, q, p_new, q_new, m_hat, c):
    """LHS − RHS of Eq. 12 for a one-shot game, where ``L^joint_{π_old}(π) = J(π) − J(π_old)``."""
    lhs = joint_value(payoff, p_new, q_new) - joint_value(payoff, p, q)
    lhs -= c * (bernoulli_kl(p, p_new) + bernoulli_kl(q, q_new))
    rhs = individual_objective(payoff, p, q, 0, p_new, m_hat, c)
    rhs += individual_objective(payoff, p, q, 1, q_new, m_hat, c)
    return lhs - rhs


def reference_objective(payoff, p, q, agent, xs, m_hat, c):
    """Eq. 17 straight from its definition (E over the new policy, textbook KL), on an array ``xs``."""
    adv = individual_advantage(payoff, p, q, agent)
    old = p if agent == 0 else q
    kl = old * np.log(old / xs) + (1 - old) * np.log((1 - old) / (1 - xs))
    kl = np.maximum(kl, 0.0)
    return (xs * adv[0] + (1 - xs) * adv[1]) / 2 - m_hat * np.sqrt(kl) - c * kl


# --- golden numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("game", MATRIX_GAMES, ids=lambda g: g.name)
def test_joint_value_at_corners_is_the_payoff(game):
    (a, b), (c, d) = game.payoff
    assert joint_value(game, 1, 1) == a
    assert joint_value(game, 1, 0) == b
    assert joint_value(game, 0, 1) == c
    assert joint_value(game, 0, 0) == d
    assert joint_value(game, 0.5, 0.5) == pytest.approx((a + b + c + d) / 4)


def test_theorem_m_hat_golden():
    # √((N−1)/N)·2·r_max/(1−γ): game 1 r_max = 7 -> 7√2; game 4 r_max = 20 -> 20√2.
    assert theorem_m_hat(MATRIX_GAMES[0]) == pytest.approx(7 * math.sqrt(2))
    assert theorem_m_hat(MATRIX_GAMES[3]) == pytest.approx(20 * math.sqrt(2))
    assert theorem_m_hat((1, -9, 2, 3)) == pytest.approx(9 * math.sqrt(2))
    assert theorem_m_hat((1, 2, 3, 4), n_agents=3, gamma=0.5) == pytest.approx(math.sqrt(2 / 3) * 16)


def test_objective_is_zero_at_old_policy():
    for game in MATRIX_GAMES:
        for p, q in STARTS:
            assert individual_objective(game, p, q, 0, p, 0.1, 10.0) == 0.0
            assert individual_objective(game, p, q, 1, q, 0.1, 10.0) == 0.0


def test_bernoulli_kl_matches_textbook_formula_and_is_accurate_near_old():
    old, new = 0.3, np.array([0.01, 0.2, 0.31, 0.9])
    textbook = old * np.log(old / new) + (1 - old) * np.log((1 - old) / (1 - new))
    np.testing.assert_allclose(bernoulli_kl(old, new), textbook, rtol=1e-12)
    # Second order: KL ≈ δ²/(2·old·(1−old)) for tiny δ, where the textbook formula cancels to noise.
    delta = 1e-9
    assert bernoulli_kl(old, old + delta) == pytest.approx(delta**2 / (2 * old * (1 - old)), rel=1e-6)


# --- decision 7: the theorem's M̂ freezes the iteration ---------------------------------------------


@pytest.mark.parametrize("game", MATRIX_GAMES, ids=lambda g: g.name)
def test_theorem_m_hat_does_not_move(game):
    m_hat = theorem_m_hat(game)
    xs = np.linspace(PROB_FLOOR, 1 - PROB_FLOOR, 4001)
    for p, q in STARTS:
        p_new, q_new = dpo_exact_step(game, p, q, m_hat, 10.0)
        assert abs(p_new - p) < 1e-6 and abs(q_new - q) < 1e-6
        # Independent of the solver: every other policy scores below the old one (0).
        for agent, old in ((0, p), (1, q)):
            values = reference_objective(game, p, q, agent, xs[np.abs(xs - old) > 1e-9], m_hat, 10.0)
            assert values.max() < 0.0
        trace = run_dpo_exact(game, p, q, m_hat)
        assert trace.converged and trace.n_steps == 1
        assert trace.J[-1] == trace.J[0]


def test_printed_m_hat_breaks_the_eq12_bound_the_theorem_m_hat_keeps():
    # The paper prints M̂ = √((N−1)/N · 2 r_max): √20 for game 4, far below 20√2. Eq. 12 then fails.
    game, (p, q, p_new, q_new), c = MATRIX_GAMES[3], (0.9, 0.9, 0.2, 0.9), 10.0
    printed = math.sqrt(0.5 * 2 * 20)
    assert eq12_gap(game, p, q, p_new, q_new, printed, c) < -1.0
    assert eq12_gap(game, p, q, p_new, q_new, theorem_m_hat(game), c) >= 0.0


# --- Fig. 11: scaled-down M̂ rises, never falls, converges ------------------------------------------

# Measured J_T − J_0 from FIG11_STARTS with M̂ = 0.1, C = 10: 0.508, 1.130, 3.993, 12.498; margins are half.
FIG11_MIN_GAIN = {"matrix_game_1": 0.25, "matrix_game_2": 0.55, "matrix_game_3": 2.0, "matrix_game_4": 6.0}


def test_fig11_traces_rise_monotonically_and_converge():
    traces = fig11_traces()
    assert [t.label for t in traces] == [g.name for g in MATRIX_GAMES]
    for trace, game in zip(traces, MATRIX_GAMES, strict=True):
        assert (trace.p[0], trace.q[0]) == FIG11_STARTS[game.name]
        assert trace.J[-1] - trace.J[0] > FIG11_MIN_GAIN[game.name]
        assert np.diff(trace.J).min() >= -1e-9
        assert trace.converged and trace.n_steps < FIG11_ITERATIONS
        np.testing.assert_allclose(
            trace.J, [joint_value(game, p, q) for p, q in zip(trace.p, trace.q, strict=True)]
        )
    j_final = [t.J[-1] for t in traces]
    # Games 1 and 2 stop near a sub-optimum (6 and 4), games 3 and 4 near their optimum (7 and 20).
    assert j_final[0] == pytest.approx(6.0, abs=0.05) and j_final[1] == pytest.approx(4.0, abs=0.05)
    assert j_final[2] == pytest.approx(7.0, abs=0.05) and j_final[3] == pytest.approx(20.0, abs=0.05)


@pytest.mark.parametrize("game", MATRIX_GAMES, ids=lambda g: g.name)
def test_scaled_m_hat_from_the_uniform_policy_rises_and_converges(game):
    trace = run_dpo_exact(game, 0.5, 0.5, m_hat=0.1, c=10.0, iterations=FIG11_ITERATIONS)
    assert trace.converged
    assert trace.J[-1] - trace.J[0] > 0.5
    assert np.diff(trace.J).min() >= -1e-9


def test_small_c_can_lower_j():
    # J's monotonicity with a scaled-down M̂ needs C ≥ |a − b − c + d|/8 (module docstring); here |k|/8 = 3.75.
    payoff, p, q = (10, -3, -9, 8), 0.7, 0.2
    p_new, q_new = dpo_exact_step(payoff, p, q, 0.1, 0.1)
    assert joint_value(payoff, p_new, q_new) < joint_value(payoff, p, q) - 1.0
    p_new, q_new = dpo_exact_step(payoff, p, q, 0.1, 3.75)
    assert joint_value(payoff, p_new, q_new) >= joint_value(payoff, p, q)


# --- properties over random games -------------------------------------------------------------------

payoffs = st.tuples(*[st.floats(-10, 10, allow_nan=False)] * 4)
probs = st.floats(0.05, 0.95)


@settings(max_examples=150, deadline=None)
@given(
    payoff=payoffs,
    p=probs,
    q=probs,
    m_scale=st.sampled_from([0.0, 0.01, 0.1, 1.0]),
    c=st.sampled_from([0.1, 1.0, 10.0, 100.0]),
)
def test_step_properties(payoff, p, q, m_scale, c):
    m_hat = m_scale * theorem_m_hat(payoff)
    p_new, q_new = dpo_exact_step(payoff, p, q, m_hat, c)
    xs = np.linspace(PROB_FLOOR, 1 - PROB_FLOOR, 2001)
    for agent, new in ((0, p_new), (1, q_new)):
        assert PROB_FLOOR <= new <= 1 - PROB_FLOOR
        f_new = individual_objective(payoff, p, q, agent, new, m_hat, c)
        assert f_new >= 0.0  # never worse than staying
        # The argmax against a slow reference: nothing on a dense grid is better.
        assert f_new >= reference_objective(payoff, p, q, agent, xs, m_hat, c).max() - 1e-9
    if m_scale == 1.0:  # the theorem's M̂: no move (so J is trivially non-decreasing)
        assert (p_new, q_new) == (p, q)
    a, b, cc, d = payoff
    if c >= abs(a - b - cc + d) / 8:  # the bilinear bound of the module docstring: J cannot drop
        assert joint_value(payoff, p_new, q_new) >= joint_value(payoff, p, q) - 1e-9


@settings(max_examples=150, deadline=None)
@given(payoff=payoffs, old=st.tuples(probs, probs), new=st.tuples(probs, probs), c=st.floats(0.01, 100))
def test_eq12_lower_bound_holds_with_theorem_m_hat(payoff, old, new, c):
    assert eq12_gap(payoff, *old, *new, theorem_m_hat(payoff), c) >= -1e-9


# --- API edges and the figure -----------------------------------------------------------------------


def test_invalid_arguments_are_rejected():
    game = MATRIX_GAMES[0]
    with pytest.raises(ValueError, match="p0"):
        run_dpo_exact(game, 0.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="c must"):
        dpo_exact_step(game, 0.5, 0.5, 0.1, 0.0)
    with pytest.raises(ValueError, match="m_hat"):
        dpo_exact_step(game, 0.5, 0.5, -1.0, 10.0)
    with pytest.raises(ValueError, match="payoff"):
        dpo_exact_step((1, 2, 3), 0.5, 0.5, 0.1, 10.0)
    with pytest.raises(ValueError, match="agent"):
        individual_objective(game, 0.5, 0.5, 2, 0.5, 0.1, 10.0)


def test_trace_respects_the_iteration_budget_and_is_read_only():
    trace = run_dpo_exact(MATRIX_GAMES[0], 0.5, 0.5, 0.1, iterations=5)
    assert trace.n_steps == 5 and not trace.converged
    assert trace.p.shape == trace.q.shape == trace.J.shape == (6,)
    with pytest.raises(ValueError):
        trace.p[0] = 0.0


def test_plot_writes_png_atomically(tmp_path):
    traces = [run_dpo_exact(g, 0.5, 0.5, 0.1, iterations=20) for g in MATRIX_GAMES]
    out = plot_dpo_exact(traces, tmp_path / "fig" / "fig11.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f.name for f in out.parent.iterdir()] == ["fig11.png"]  # no temp file left behind
