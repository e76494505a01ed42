"""DP noise: clipping, noise scale, simplex projection, and the per-agent accountants against Opacus
and the pure-ε formula."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from opacus.accountants import RDPAccountant

from confide.channels import Inbox, Message
from confide.channels.dp_noise import DPNoiseLayer, clip_to_norm, project_onto_simplex, sensitivity
from confide.channels.stack import ChannelSettings, build_channel
from confide.privacy import GaussianAccountant, LaplaceAccountant

N = 3
ROWS = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 5), st.integers(1, 6)),
    elements=st.floats(-5, 5, allow_subnormal=False),
)


class Sink:
    def exchange(self, round, outgoing):
        return Inbox(outgoing)


def projection_by_bisection(y: np.ndarray) -> np.ndarray:
    """Slow reference: p = max(y − τ, 0) with τ found by bisection on Σ max(y − τ, 0) = 1."""
    lo, hi = y.min() - 1.0, y.max()
    for _ in range(200):
        tau = (lo + hi) / 2
        if np.maximum(y - tau, 0).sum() > 1:
            lo = tau
        else:
            hi = tau
    return np.maximum(y - (lo + hi) / 2, 0)


# --- simplex projection ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(ROWS)
def test_projection_lands_on_the_simplex_and_matches_the_reference(rows):
    p = project_onto_simplex(rows)
    assert p.shape == rows.shape and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=-1), 1, atol=1e-12)
    for row, got in zip(rows, p, strict=True):
        np.testing.assert_allclose(got, projection_by_bisection(row), atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(ROWS, st.integers(0, 2**32))
def test_projection_is_the_nearest_point_of_the_simplex(rows, seed):
    p = project_onto_simplex(rows)
    others = np.random.default_rng(seed).dirichlet(np.ones(rows.shape[1]), size=(200, rows.shape[0]))
    nearest = np.linalg.norm(rows - p, axis=-1)
    assert (np.linalg.norm(rows - others, axis=-1) >= nearest - 1e-12).all()


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),  # already on the simplex
        ([0.5, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]),
        ([2.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
        ([0.6, 0.6, -1.0], [0.5, 0.5, 0.0]),
        ([1.0, 0.5], [0.75, 0.25]),  # shift by τ = 0.25
        ([-3.0, -3.0], [0.5, 0.5]),
    ],
)
def test_projection_known_cases(y, p):
    np.testing.assert_allclose(project_onto_simplex(np.array(y)), p, atol=1e-12)


# --- clipping and noise ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(ROWS, st.floats(0.01, 10), st.sampled_from([1, 2]))
def test_clipping_bounds_the_norm_and_keeps_small_arrays(x, bound, order):
    clipped = clip_to_norm(x, bound, order)
    norm = np.abs(clipped).sum() if order == 1 else np.linalg.norm(clipped)
    assert norm <= bound * (1 + 1e-12)
    original = np.abs(x).sum() if order == 1 else np.linalg.norm(x)
    if original <= bound:
        np.testing.assert_array_equal(clipped, x)
    else:
        np.testing.assert_allclose(clipped * original / bound, x, atol=1e-9)


def test_sensitivity_follows_the_neighbouring_relation():
    assert sensitivity(0.5, "replace") == 1.0
    assert sensitivity(0.5, "zero_out") == 0.5


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
def test_noise_has_the_stated_scale(mechanism):
    layer = DPNoiseLayer(
        Sink(), mechanism=mechanism, clip_norm=0.5, noise_multiplier=2.0, rng=np.random.default_rng(0)
    )
    assert layer.sensitivity == 1.0 and layer.noise_scale == 2.0
    zeros = np.zeros(200_000, np.float64)  # nothing to clip: the output is pure noise
    noise = layer.privatise(Message(0, 1, "value", 0, {"values": zeros})).payload["values"]
    n = noise.size
    if mechanism == "gaussian":  # sample std within 5 sigma (std of s² is σ²·√(2/n))
        assert abs(noise.var() - 4.0) <= 5 * 4.0 * math.sqrt(2 / n)
    else:  # mean |X| = b, var |X| = b²
        assert abs(np.abs(noise).mean() - 2.0) <= 5 * 2.0 / math.sqrt(n)


def test_clipping_happens_before_noise():
    layer = DPNoiseLayer(
        Sink(), mechanism="gaussian", clip_norm=1.0, noise_multiplier=1e-9, rng=np.random.default_rng(0)
    )
    got = layer.privatise(Message(0, 1, "value", 0, {"values": np.array([3.0, 4.0], np.float32)}))
    np.testing.assert_allclose(got.payload["values"], [0.6, 0.8], atol=1e-6)
    assert got.payload["values"].dtype == np.float32


def test_distributions_are_projected_and_unnamed_arrays_untouched():
    stack = build_channel(
        ChannelSettings(dp_mechanism="laplace", dp_noise_multiplier=0.5), 2, np.random.default_rng(0)
    )
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=30).astype(np.float32)
    idx = np.arange(30, dtype=np.int32)
    for kind in ("policy", "anticipation", "suggestion"):
        got = (
            stack.exchange(0, [Message(0, 1, kind, 0, {"probs": probs, "index": idx})]).messages()[0].payload
        )
        assert got["probs"].dtype == np.float32 and (got["probs"] >= 0).all()
        np.testing.assert_allclose(got["probs"].sum(axis=1), 1, atol=1e-6)
        assert not np.array_equal(got["probs"], probs)
        np.testing.assert_array_equal(got["index"], idx)
    values = stack.exchange(1, [Message(0, 1, "value", 1, {"probs": probs})]).messages()[0].payload["probs"]
    assert (values < 0).any()  # not a distribution kind: not projected


@pytest.mark.parametrize("mix", [0.0, 0.05, 0.5])
def test_the_uniform_mix_bounds_every_shared_probability_away_from_zero(mix):
    """Receivers divide by shared probabilities (SS's ξ): the mix keeps each one ≥ mix / A."""
    layer = DPNoiseLayer(
        Sink(),
        mechanism="gaussian",
        clip_norm=1.0,
        noise_multiplier=4.0,
        rng=np.random.default_rng(0),
        uniform_mix=mix,
    )
    probs = np.random.default_rng(1).dirichlet(np.ones(2), size=500).astype(np.float32)
    got = layer.privatise(Message(0, 1, "policy", 0, {"probs": probs})).payload["probs"]
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-6)
    assert got.min() >= mix / 2 - 1e-7
    if mix == 0.0:
        assert (got == 0).any()  # σ = 4 on a clipped array: the bare projection lands on vertices
    expected = (1 - mix) * project_onto_simplex(
        clip_to_norm(probs, 1.0, 2) + np.random.default_rng(0).normal(0.0, 8.0, size=probs.shape)
    ) + mix / 2
    np.testing.assert_allclose(got, expected.astype(np.float32), atol=1e-6)


def test_a_uniform_mix_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="uniform_mix"):
        ChannelSettings(dp_mechanism="gaussian", dp_uniform_mix=1.0)
    with pytest.raises(ValueError, match="uniform_mix"):
        DPNoiseLayer(
            Sink(),
            mechanism="gaussian",
            clip_norm=1.0,
            noise_multiplier=1.0,
            rng=np.random.default_rng(0),
            uniform_mix=-0.1,
        )


def test_a_named_integer_array_is_refused():
    layer = DPNoiseLayer(
        Sink(), mechanism="gaussian", clip_norm=1.0, noise_multiplier=1.0, rng=np.random.default_rng(0)
    )
    with pytest.raises(ValueError):
        layer.privatise(Message(0, 1, "v", 0, {"values": np.arange(3)}))


# --- accounting -----------------------------------------------------------------------------------


def _policy_rounds(stack, rounds: int, senders=range(N)) -> None:
    probs = np.full((10, 2), 0.5, np.float32)
    for t in range(rounds):
        msgs = [Message(s, r, "policy", t, {"probs": probs}) for s in senders for r in range(N) if r != s]
        stack.exchange(t, msgs)


def test_opacus_golden_epsilon():
    """σ = 1, q = 1, 100 releases, δ = 1e-5: ε ≈ 96 (specs/federation.md)."""
    acc = GaussianAccountant(1.0)
    acc.step(0, 100)
    assert acc.epsilon(0, 1e-5) == pytest.approx(96.1163, abs=1e-3)


@pytest.mark.parametrize(("sigma", "rounds", "delta"), [(1.0, 5, 1e-5), (4.0, 20, 1e-6), (0.7, 3, 1e-3)])
def test_gaussian_layer_accountant_reproduces_opacus(sigma, rounds, delta):
    stack = build_channel(
        ChannelSettings(dp_mechanism="gaussian", dp_noise_multiplier=sigma, dp_delta=delta),
        N,
        np.random.default_rng(0),
    )
    _policy_rounds(stack, rounds, senders=(0, 1))  # agent 2 shares nothing
    reference = RDPAccountant()
    for _ in range(rounds * (N - 1)):  # one release per message: N − 1 receivers per round
        reference.step(noise_multiplier=sigma, sample_rate=1.0)
    report = stack.privacy()
    for agent in (0, 1):
        assert report[agent] == (pytest.approx(reference.get_epsilon(delta=delta), rel=1e-12), delta)
    assert report[2] == (0.0, 0.0)


@pytest.mark.parametrize(("clip", "sigma", "neighbouring"), [(1.0, 2.0, "replace"), (0.3, 0.5, "zero_out")])
def test_laplace_epsilon_is_steps_times_sensitivity_over_scale(clip, sigma, neighbouring):
    stack = build_channel(
        ChannelSettings(
            dp_mechanism="laplace", dp_clip_norm=clip, dp_noise_multiplier=sigma, dp_neighbouring=neighbouring
        ),
        N,
        np.random.default_rng(0),
    )
    _policy_rounds(stack, 4)
    steps = 4 * (N - 1)
    delta_f = 2 * clip if neighbouring == "replace" else clip
    b = sigma * delta_f
    for agent in range(N):
        assert stack.privacy()[agent] == (pytest.approx(steps * delta_f / b), 0.0)


def test_each_noised_array_of_a_message_is_one_release():
    stack = build_channel(ChannelSettings(dp_mechanism="laplace"), 2, np.random.default_rng(0))
    payload = {"probs": np.full((2, 2), 0.5, np.float32), "values": np.zeros((2, 2), np.float32)}
    stack.exchange(0, [Message(0, 1, "anticipation", 0, payload)])
    assert stack.layers["dp_noise"].accountant.releases[0] == 2


def test_accountants_checkpoint():
    for acc in (GaussianAccountant(1.5), LaplaceAccountant(2.0, 3.0)):
        acc.step(1, 7)
        clone = type(acc)(*([9.0] if isinstance(acc, GaussianAccountant) else [9.0, 9.0]))
        clone.load_state_dict(acc.state_dict())
        assert clone.report(3, 1e-5) == acc.report(3, 1e-5)


def test_no_dp_reports_zero_for_every_agent():
    stack = build_channel(ChannelSettings(), N, np.random.default_rng(0))
    _policy_rounds(stack, 2)
    assert stack.privacy() == dict(zip(range(N), itertools.repeat((0.0, 0.0)), strict=False))
