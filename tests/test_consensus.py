"""Consensus maths on hand-made graphs and vectors: exact Metropolis–Hastings weights, one step equals
the hand-computed weighted mean, repeated steps reach the plain average; receivers mix only what they
accepted and reject malformed parameter vectors."""

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.channels import IdealChannel, Inbox, Message
from confide.core.comms import Comms, Neighbourhood
from confide.core.consensus import (
    consensus_round,
    consensus_step,
    flat_parameters,
    load_flat_parameters_,
    metropolis_hastings_weights,
    mix_received,
    parameter_messages,
    update_adjacency,
)
from confide.core.networks import StackedMLP
from confide.topologies import adjacency_mask, complete, line, ring

LINE3 = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
KIND = "critic_params"


def test_weights_of_a_line_of_three():
    # degrees 1, 2, 1: every link weighs 1 / (1 + 2); the ends keep 2/3, the middle 1/3
    w = metropolis_hastings_weights(LINE3)
    expected = np.array([[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-15)


def test_weights_of_a_star():
    # centre 0 with degree 3, leaves with degree 1: links weigh 1/4; the centre keeps 1/4, leaves 3/4
    star = adjacency_mask(nx.star_graph(3), 4)
    w = metropolis_hastings_weights(star)
    expected = np.array(
        [[1 / 4, 1 / 4, 1 / 4, 1 / 4], [1 / 4, 3 / 4, 0, 0], [1 / 4, 0, 3 / 4, 0], [1 / 4, 0, 0, 3 / 4]]
    )
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_weights_are_symmetric_doubly_stochastic_with_positive_diagonal(n, seed):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < 0.5, k=1)
    w = metropolis_hastings_weights(upper | upper.T)
    np.testing.assert_allclose(w, w.T, rtol=0, atol=0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (np.diag(w) > 0).all() and (w >= 0).all()


def test_weights_reject_an_asymmetric_or_non_square_graph():
    with pytest.raises(ValueError, match="symmetric"):
        metropolis_hastings_weights(np.array([[0, 1], [0, 0]], dtype=bool))
    with pytest.raises(ValueError, match="square"):
        metropolis_hastings_weights(np.zeros((2, 3), dtype=bool))


def test_one_step_is_the_hand_computed_weighted_mean():
    x = np.array([[3.0, -1.0], [6.0, 2.0], [9.0, 5.0]])
    out = consensus_step(x, metropolis_hastings_weights(LINE3))
    hand = np.array(
        [
            [2 / 3 * 3 + 1 / 3 * 6, 2 / 3 * -1 + 1 / 3 * 2],
            [(3 + 6 + 9) / 3, (-1 + 2 + 5) / 3],
            [1 / 3 * 6 + 2 / 3 * 9, 1 / 3 * 2 + 2 / 3 * 5],
        ]
    )
    np.testing.assert_allclose(out, hand, rtol=0, atol=1e-12)


@pytest.mark.parametrize("graph", [line(5), ring(6), complete(4), nx.star_graph(4)], ids=str)
def test_repeated_consensus_on_a_connected_graph_reaches_the_plain_average(graph):
    n = graph.number_of_nodes()
    w = metropolis_hastings_weights(adjacency_mask(graph, n))
    x0 = np.random.default_rng(0).normal(size=(n, 7)) * 10
    x = x0
    for _ in range(500):
        x = consensus_step(x, w)
    np.testing.assert_allclose(x, np.broadcast_to(x0.mean(axis=0), x.shape), rtol=0, atol=1e-6)
    np.testing.assert_allclose(x.mean(axis=0), x0.mean(axis=0), rtol=0, atol=1e-9)  # W is doubly stochastic


def test_union_over_samples_is_the_graph_of_a_per_sample_update():
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[0, 0, 1] = mask[0, 1, 0] = True
    mask[2, 1, 2] = mask[2, 2, 1] = True
    np.testing.assert_array_equal(update_adjacency(Neighbourhood(mask)), LINE3)
    assert not update_adjacency(Neighbourhood(mask, talks=False)).any()


def _messages(x, mask=LINE3):
    return parameter_messages(x, Neighbourhood(mask), KIND, 0)


def test_full_delivery_mixes_exactly_like_the_weight_matrix():
    x = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    comms = Comms(IdealChannel(), 3)
    inbox = comms.exchange(_messages(x))
    w = metropolis_hastings_weights(LINE3)
    new, accepted = mix_received(x, inbox, KIND, comms, w, LINE3)
    np.testing.assert_allclose(new, consensus_step(x, w), rtol=0, atol=1e-12)
    assert accepted.tolist() == [1, 2, 1] and not comms.rejected


def test_a_missing_neighbour_is_left_out_and_the_weights_renormalised():
    x = np.array([[3.0], [6.0], [9.0]], dtype=np.float32)
    comms = Comms(IdealChannel(), 3)
    kept = [m for m in _messages(x) if (m.sender, m.receiver) != (2, 1)]  # 2 -> 1 lost
    new, accepted = mix_received(x, Inbox(kept), KIND, comms, metropolis_hastings_weights(LINE3), LINE3)
    # agent 1 mixes itself (1/3) and agent 0 (1/3) only: (6 + 3) / 2
    assert new[1, 0] == pytest.approx(4.5, abs=1e-12)
    assert new[0, 0] == pytest.approx(4.0, abs=1e-12) and new[2, 0] == pytest.approx(8.0, abs=1e-12)
    assert accepted.tolist() == [1, 1, 1]


def test_an_agent_that_receives_nothing_keeps_its_vector_bit_for_bit():
    x = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    comms = Comms(IdealChannel(), 3)
    new, accepted = mix_received(x, Inbox(), KIND, comms, metropolis_hastings_weights(LINE3), LINE3)
    assert (new.astype(np.float32) == x).all() and accepted.tolist() == [0, 0, 0]


GOOD = np.ones(4, dtype=np.float32)


@pytest.mark.parametrize(
    "message,reason",
    [
        (Message(1, 0, KIND, 0, {"params": np.full(4, np.nan, np.float32)}), "non_finite"),
        (Message(1, 0, KIND, 0, {"params": np.array([1, 1, np.inf, 1], np.float32)}), "non_finite"),
        (Message(1, 0, KIND, 0, {"params": np.ones(5, np.float32)}), "bad_shape"),
        (Message(1, 0, KIND, 0, {"params": np.ones(3, np.float32)}), "bad_shape"),
        (Message(1, 0, KIND, 0, {"params": np.ones((2, 2), np.float32)}), "bad_shape"),
        (Message(1, 0, KIND, 0, {"params": np.ones(4, np.int32)}), "bad_shape"),
        (Message(1, 0, KIND, 0, {"params": GOOD, "extra": GOOD}), "bad_keys"),
        (Message(2, 0, KIND, 0, {"params": GOOD}), "not_neighbour"),
        (Message(0, 0, KIND, 0, {"params": GOOD}), "bad_address"),
        (Message(7, 0, KIND, 0, {"params": GOOD}), "bad_address"),
        (Message(1, 0, KIND, 0, {"params": GOOD * 2}), "duplicate"),
    ],
)
def test_malformed_parameter_message_is_rejected_counted_and_left_out(message, reason):
    x = np.zeros((3, 4), dtype=np.float32)
    comms = Comms(IdealChannel(), 3)
    inbox = Inbox([Message(1, 0, KIND, 0, {"params": GOOD}), message])
    new, accepted = mix_received(x, inbox, KIND, comms, metropolis_hastings_weights(LINE3), LINE3)
    assert comms.rejected == {f"{KIND}:{reason}": 1}
    assert accepted[0] == 1 and np.isfinite(new).all()
    np.testing.assert_allclose(new[0], 1 / 3, rtol=0, atol=1e-7)  # own 0 · 2/3 + good 1 · 1/3


def test_messages_follow_the_links_and_a_gap_sends_nothing():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    msgs = _messages(x)
    assert sorted((m.sender, m.receiver) for m in msgs) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    for m in msgs:
        assert m.payload["params"].dtype == np.float32 and (m.payload["params"] == x[m.sender]).all()
    assert parameter_messages(x, Neighbourhood(LINE3, talks=False), KIND, 0) == []


def test_flatten_and_load_round_trip_per_agent_slices():
    gen = torch.Generator().manual_seed(0)
    bank = StackedMLP(6, (3, 5, 2), gen)  # 3 agents × 2 heads
    params = bank.group_parameters()
    flat = flat_parameters(params, 3)
    assert flat.shape == (3, 2 * (3 * 5 + 5 + 5 * 2 + 2))
    np.testing.assert_array_equal(flat[1, : 2 * 3 * 5], bank.weights[0][2:4].detach().numpy().ravel())
    changed = flat.copy()
    changed[1] += 1.0
    load_flat_parameters_(params, changed, np.array([False, True, False]))
    np.testing.assert_array_equal(flat_parameters(params, 3), changed)


def test_consensus_round_on_a_bank_mixes_in_place():
    gen = torch.Generator().manual_seed(1)
    bank = StackedMLP(3, (2, 4, 1), gen)
    before = flat_parameters(bank.group_parameters(), 3).astype(np.float64)
    comms = Comms(IdealChannel(), 3)
    stats = consensus_round(bank.group_parameters(), 3, KIND, comms, Neighbourhood(LINE3))
    after = flat_parameters(bank.group_parameters(), 3)
    np.testing.assert_allclose(after, consensus_step(before, metropolis_hastings_weights(LINE3)), atol=1e-6)
    assert stats["consensus/peers"] == pytest.approx(4 / 3)
