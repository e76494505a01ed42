"""Delay, drops, bandwidth, quantisation and the builder: identity, timing, conservation, loss rates,
byte counts, validation, checkpoint/resume."""

import math
import pickle
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from confide.channels import Inbox, Message, Meter, array_wire_bytes
from confide.channels.bandwidth import BandwidthLayer
from confide.channels.drops import BernoulliLoss, DropLayer, GilbertElliottLoss
from confide.channels.quantise import SCALE_SUFFIX, QuantiseLayer, dequantise_int8, quantise_int8
from confide.channels.stack import ChannelSettings, build_channel

N = 4
LINKS = [(i, j) for i in range(N) for j in range(N) if i != j]


class Sink:
    """A transport that delivers whatever it is handed, without copying or round checks."""

    def __init__(self) -> None:
        self.handed: list[Message] = []

    def exchange(self, round, outgoing):
        self.handed.extend(outgoing)
        return Inbox(outgoing)


def tagged(sender: int, receiver: int, round: int, tag: int, kind: str = "value") -> Message:
    """A small message whose payload identifies it."""
    return Message(sender, receiver, kind, round, {"id": np.array([tag], np.int64)})


def traffic(rounds: list[list[int]]) -> list[list[Message]]:
    """Per round, messages on the listed link indices, each with a unique id."""
    out, tag = [], 0
    for r, links in enumerate(rounds):
        msgs = []
        for k in links:
            s, d = LINKS[k % len(LINKS)]
            msgs.append(tagged(s, d, r, tag))
            tag += 1
        out.append(msgs)
    return out


ROUNDS = st.lists(st.lists(st.integers(0, len(LINKS) - 1), max_size=8), min_size=1, max_size=8)
PAYLOADS = st.dictionaries(
    st.text(alphabet="abcxyz", min_size=1, max_size=6),
    st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.float16, np.bool_]).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4))
    ),
    max_size=3,
)


def same_bits(a: Message, b: Message) -> bool:
    return (a.sender, a.receiver, a.kind, a.round) == (b.sender, b.receiver, b.kind, b.round) and (
        a.encoded_payload() == b.encoded_payload()
    )


# --- identity -------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(LINKS), PAYLOADS), max_size=6), st.booleans(), st.integers(0, 2**32)
)
def test_ideal_settings_are_the_identity_bit_exact(items, encrypt, seed):
    """No drop, no delay, no noise: every message arrives this round, bit for bit (also encrypted)."""
    stack = build_channel(ChannelSettings(encrypt=encrypt), N, np.random.default_rng(seed))
    sent = [Message(s, d, "policy", 7, p) for (s, d), p in items]
    got = stack.exchange(7, sent).messages()
    expected = Inbox(sent).messages()
    assert len(got) == len(expected)
    assert all(same_bits(g, e) for g, e in zip(got, expected, strict=True))
    assert all(
        g.payload[k] is not e.payload[k] for g, e in zip(got, expected, strict=True) for k in g.payload
    )


def test_default_stack_has_no_layers():
    assert build_channel(ChannelSettings(), N, np.random.default_rng(0)).layers == {}


# --- delay ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5), ROUNDS)
def test_fixed_delay_d_delivers_at_exactly_t_plus_d(d, rounds):
    stack = build_channel(ChannelSettings(delay_rounds=d), N, np.random.default_rng(0))
    sent = traffic(rounds)
    arrived: dict[int, int] = {}
    for t in range(len(sent) + d + 1):
        for m in stack.exchange(t, sent[t] if t < len(sent) else []).messages():
            arrived[int(m.payload["id"][0])] = t
            assert m.round == t - d  # stale messages keep their sending round
    for t, msgs in enumerate(sent):
        for m in msgs:
            assert arrived[int(m.payload["id"][0])] == t + d


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3), st.integers(1, 4), ROUNDS, st.integers(0, 2**32))
def test_random_delay_stays_in_range_and_in_order_per_link(lo, jitter, rounds, seed):
    stack = build_channel(
        ChannelSettings(delay_rounds=lo, delay_jitter_rounds=jitter), N, np.random.default_rng(seed)
    )
    sent = traffic(rounds)
    order: dict[tuple[int, int], list[int]] = defaultdict(list)
    for t in range(len(sent) + lo + jitter + 1):
        for m in stack.exchange(t, sent[t] if t < len(sent) else []).messages():
            assert lo <= t - m.round <= lo + jitter
            order[(m.sender, m.receiver)].append(int(m.payload["id"][0]))
    assert stack.in_flight == 0
    for link, ids in order.items():
        assert ids == sorted(ids), link  # ids grow with sending order on each link


# --- conservation ---------------------------------------------------------------------------------

SETTINGS = st.builds(
    ChannelSettings,
    loss=st.sampled_from(["none", "bernoulli", "gilbert_elliott"]),
    loss_probability=st.floats(0, 1),
    burst_p=st.floats(0.01, 1),
    burst_r=st.floats(0.01, 1),
    burst_loss_in_bad=st.floats(0, 1),
    burst_loss_in_good=st.floats(0, 1),
    bandwidth_bytes=st.one_of(st.none(), st.integers(1, 200)),
    delay_rounds=st.integers(0, 3),
    delay_jitter_rounds=st.integers(0, 3),
    encrypt=st.booleans(),
    quantisation=st.sampled_from(["none", "float16", "int8"]),
)


@settings(max_examples=40, deadline=None)
@given(SETTINGS, ROUNDS, st.integers(0, 2**32))
def test_sent_equals_delivered_plus_lost_plus_in_flight_every_round(config, rounds, seed):
    stack = build_channel(config, N, np.random.default_rng(seed))
    delivered = 0
    for t, msgs in enumerate(traffic(rounds) + [[]] * 7):
        delivered += len(stack.exchange(t, msgs))
        c = stack.counts()
        assert c["delivered"] == delivered
        assert c["rejected"] == 0
        assert c["sent"] == c["delivered"] + c["lost"] + c["rejected"] + c["in_flight"]
    assert stack.in_flight == 0


# --- drops ----------------------------------------------------------------------------------------


def _lost_flags(layer: DropLayer, sink: Sink, n: int, link: tuple[int, int] = (0, 1)) -> np.ndarray:
    flags = np.zeros(n, bool)
    for t in range(n):
        before = len(sink.handed)
        layer.exchange(t, [tagged(*link, t, t)])
        flags[t] = len(sink.handed) == before
    return flags


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.9])
def test_bernoulli_drop_rate_within_five_sigma(p):
    sink = Sink()
    layer = DropLayer(sink, BernoulliLoss(p), np.random.default_rng(12345))
    n = 20_000
    msgs = [tagged(*LINKS[k % len(LINKS)], 0, k) for k in range(n)]
    layer.exchange(0, msgs)
    lost = layer.losses["lost"]
    assert lost + len(sink.handed) == n
    assert abs(lost - n * p) <= 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize(
    "model",
    [
        GilbertElliottLoss(p=0.05, r=0.3, loss_in_bad=0.9, loss_in_good=0.01),
        GilbertElliottLoss(p=0.01, r=0.1),  # netem's simple bursts: bad loses everything, good nothing
        GilbertElliottLoss(p=0.4, r=0.5, loss_in_bad=0.5, loss_in_good=0.2),
    ],
)
def test_gilbert_elliott_stationary_loss_rate_matches_theory(model):
    sink = Sink()
    n = 40_000
    flags = _lost_flags(DropLayer(sink, model, np.random.default_rng(7)), sink, n)
    mean = model.stationary_loss
    bad = model.stationary_bad
    lam = 1 - model.p - model.r  # second eigenvalue of the chain
    # asymptotic variance of the sample mean of a Markov-modulated Bernoulli sequence
    var = mean * (1 - mean) + 2 * bad * (1 - bad) * (model.loss_in_bad - model.loss_in_good) ** 2 * lam / (
        1 - lam
    )
    assert abs(flags.mean() - mean) <= 5 * math.sqrt(var / n)


def test_gilbert_elliott_mean_burst_length_is_one_over_r():
    sink = Sink()
    model = GilbertElliottLoss(p=0.02, r=0.25)
    flags = _lost_flags(DropLayer(sink, model, np.random.default_rng(3)), sink, 40_000)
    edges = np.diff(np.concatenate([[0], flags.astype(int), [0]]))
    bursts = np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]
    assert abs(bursts.mean() - 1 / model.r) < 0.15 * (1 / model.r)


def test_gilbert_elliott_state_is_per_directed_link():
    layer = DropLayer(Sink(), GilbertElliottLoss(p=0.5, r=0.5), np.random.default_rng(0))
    layer.exchange(0, [tagged(s, d, 0, 0) for s, d in LINKS])
    assert set(layer.state_dict()["bad"]) == set(LINKS)


# --- bandwidth ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=12), st.integers(1, 300))
def test_bandwidth_admits_greedily_within_budget_and_drops_the_rest(items, budget):
    sink = Sink()
    layer = BandwidthLayer(sink, budget)
    msgs = [Message(0, 1 + link, "v", 0, {"x": np.zeros(size, np.uint8)}) for link, size in items]
    layer.exchange(0, msgs)
    used: dict[int, int] = defaultdict(int)
    kept = {id(m) for m in sink.handed}
    for m in msgs:
        size = m.payload_bytes()
        if id(m) in kept:
            used[m.receiver] += size
        else:
            assert used[m.receiver] + size > budget  # dropped only if it did not fit
    assert all(v <= budget for v in used.values())
    assert layer.losses["over_budget"] == len(msgs) - len(sink.handed)


def test_bandwidth_drops_excess_rather_than_queueing_it():
    stack = build_channel(ChannelSettings(bandwidth_bytes=100), 2, np.random.default_rng(0))
    big = Message(0, 1, "v", 0, {"x": np.zeros(40, np.float32)})  # 2 + 1 + 1 + 1 + 1 + 4 + 160 = 170 B
    small = Message(0, 1, "v", 0, {"x": np.zeros(4, np.float32)})  # 26 B
    assert [m.payload_bytes() for m in (big, small)] == [170, 26]
    assert len(stack.exchange(0, [big, small, small, small, small])) == 3  # 3 × 26 = 78 ≤ 100 < 104
    assert len(stack.exchange(1, [])) == 0  # nothing was queued
    assert stack.losses()["bandwidth"]["over_budget"] == 2


def test_quantisation_lets_a_message_through_a_thin_link():
    probs = np.full((480, 2), 0.5, np.float32)  # 3,858 B in float32, 1,001 B in 8 bits
    msg = Message(0, 1, "policy", 0, {"probs": probs})
    thin = dict(bandwidth_bytes=1001)
    assert len(build_channel(ChannelSettings(**thin), 2, np.random.default_rng(0)).exchange(0, [msg])) == 0
    q = build_channel(ChannelSettings(quantisation="int8", **thin), 2, np.random.default_rng(0))
    assert len(q.exchange(0, [msg])) == 1


# --- quantisation ---------------------------------------------------------------------------------

FINITE32 = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=2, max_side=16),
    elements=st.floats(-1e6, 1e6, width=32),
)


@settings(max_examples=100, deadline=None)
@given(FINITE32)
def test_int8_error_is_at_most_half_a_step(x):
    q, params = quantise_int8(x)
    assert q.dtype == np.uint8 and params.dtype == np.float32
    back = dequantise_int8(q, params)
    assert back.dtype == np.float32 and back.shape == x.shape
    scale = float(params[1])
    rounding = np.abs(x.astype(np.float64)) * 2.0**-24 + float(np.finfo(np.float32).tiny)  # float32 cast
    assert (np.abs(back.astype(np.float64) - x) <= scale / 2 * (1 + 1e-9) + rounding).all()
    if x.max() == x.min():
        np.testing.assert_array_equal(back, x)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=16),
        elements=st.floats(-6e4, 6e4, width=32),
    )
)
def test_float16_error_is_relative_half_ulp(x):
    layer = QuantiseLayer(Sink(), "float16")
    got = layer.exchange(0, [Message(0, 1, "value", 0, {"values": x})]).messages()[0].payload["values"]
    assert got.dtype == np.float32
    expected = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("mode", "itemsize"), [("float16", 2), ("int8", 1)])
def test_metered_bytes_shrink_by_the_expected_factor(mode, itemsize):
    shape = (480, 2)
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    msgs = [Message(0, 1, "value", 0, {"values": values})]
    meters = {}
    for m in ("none", mode):
        meters[m] = Meter(Sink())
        build_channel(
            ChannelSettings(quantisation=m), 2, np.random.default_rng(0), wire=lambda c, m=m: meters[m]
        ).exchange(0, msgs)
    plain = 2 + array_wire_bytes("values", shape, 4)
    quantised = 2 + array_wire_bytes("values", shape, itemsize)
    if mode == "int8":
        quantised += array_wire_bytes("values" + SCALE_SUFFIX, (2,), 4)
    assert meters["none"].total_bytes == plain == 3859
    assert meters[mode].total_bytes == quantised
    assert plain / quantised == pytest.approx(4 / itemsize, rel=0.05)  # 1.99 and 3.85: framing


@pytest.mark.parametrize("mode", ["float16", "int8"])
def test_dequantised_distributions_are_back_on_the_simplex(mode):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=50).astype(np.float32)
    stack = build_channel(ChannelSettings(quantisation=mode), 2, rng)
    got = stack.exchange(0, [Message(0, 1, "policy", 0, {"probs": probs})]).messages()[0].payload["probs"]
    assert got.dtype == np.float32 and (got >= 0).all()
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-6)
    assert np.abs(got - probs).max() <= (2 / 255 if mode == "int8" else 2e-3)


def test_integer_arrays_pass_quantisation_untouched():
    idx = np.arange(5, dtype=np.int32)
    stack = build_channel(ChannelSettings(quantisation="int8"), 2, np.random.default_rng(0))
    got = stack.exchange(0, [Message(0, 1, "v", 0, {"index": idx})]).messages()[0].payload
    assert got.keys() == {"index"} and got["index"].dtype == np.int32
    np.testing.assert_array_equal(got["index"], idx)


class Corrupt(Sink):
    def exchange(self, round, outgoing):
        return Inbox(
            [m.with_payload({**m.payload, "x" + SCALE_SUFFIX: np.zeros(3, np.float32)}) for m in outgoing]
        )


def test_mismatched_quantisation_companions_are_rejected_and_counted():
    stack = build_channel(ChannelSettings(quantisation="int8"), 2, np.random.default_rng(0), inner=Corrupt())
    assert len(stack.exchange(0, [Message(0, 1, "v", 0, {"x": np.ones(3, np.float32)})])) == 0
    assert stack.rejections()["quantise"] == {"malformed": 1}


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        dict(loss_probability=1.5),
        dict(burst_p=-0.1),
        dict(burst_loss_in_bad=2.0),
        dict(loss="gilbert_elliott", burst_p=0.0, burst_r=0.0),
        dict(delay_rounds=-1),
        dict(delay_jitter_rounds=-2),
        dict(bandwidth_bytes=0),
        dict(dp_mechanism="exponential"),
        dict(quantisation="int4"),
        dict(loss="sometimes"),
        dict(dp_neighbouring="swap"),
        dict(dp_clip_norm=0.0),
        dict(dp_noise_multiplier=-1.0),
        dict(dp_delta=0.0),
        dict(dp_arrays=("",)),
    ],
)
def test_bad_settings_raise_one_line_value_errors(bad):
    with pytest.raises(ValueError) as err:
        ChannelSettings(**bad)
    assert "\n" not in str(err.value)


# --- determinism and checkpoints ------------------------------------------------------------------

EVERYTHING = ChannelSettings(
    dp_mechanism="gaussian",
    quantisation="int8",
    encrypt=True,
    bandwidth_bytes=400,
    loss="gilbert_elliott",
    burst_p=0.2,
    burst_r=0.5,
    burst_loss_in_bad=0.8,
    burst_loss_in_good=0.05,
    delay_rounds=1,
    delay_jitter_rounds=2,
)


def _policy_round(t: int) -> list[Message]:
    probs = np.random.default_rng(t).dirichlet(np.ones(2), size=20).astype(np.float32)
    return [Message(s, d, "policy", t, {"probs": probs}) for s, d in LINKS]


def _run(stack, rounds: range) -> list[tuple]:
    out = []
    for t in rounds:
        for m in stack.exchange(t, _policy_round(t)).messages():
            out.append((t, m.sender, m.receiver, m.round, m.encoded_payload()))
    return out


def test_same_seed_same_transcript_different_seed_differs():
    a = _run(build_channel(EVERYTHING, N, np.random.default_rng(1)), range(8))
    b = _run(build_channel(EVERYTHING, N, np.random.default_rng(1)), range(8))
    c = _run(build_channel(EVERYTHING, N, np.random.default_rng(2)), range(8))
    assert a == b and a != c


def test_checkpoint_and_resume_reproduce_an_uninterrupted_run():
    straight = build_channel(EVERYTHING, N, np.random.default_rng(5))
    expected = _run(straight, range(10))
    first = build_channel(EVERYTHING, N, np.random.default_rng(5))
    got = _run(first, range(4))
    state = pickle.loads(pickle.dumps(first.state_dict()))
    assert first.in_flight > 0  # the checkpoint carries messages in flight
    resumed = build_channel(EVERYTHING, N, np.random.default_rng(999))  # every stream comes from the state
    resumed.load_state_dict(state)
    got += _run(resumed, range(4, 10))
    assert got == expected
    assert resumed.counts() == straight.counts()
    assert resumed.privacy() == straight.privacy()


def test_loading_a_checkpoint_of_other_layers_fails():
    state = build_channel(EVERYTHING, N, np.random.default_rng(0)).state_dict()
    with pytest.raises(ValueError):
        build_channel(ChannelSettings(), N, np.random.default_rng(0)).load_state_dict(state)


def test_turning_on_drops_does_not_change_delays():
    base = ChannelSettings(delay_rounds=0, delay_jitter_rounds=3)
    lossy = ChannelSettings(delay_rounds=0, delay_jitter_rounds=3, loss="bernoulli", loss_probability=0.0)
    a = _run(build_channel(base, N, np.random.default_rng(4)), range(6))
    b = _run(build_channel(lossy, N, np.random.default_rng(4)), range(6))
    assert a == b
