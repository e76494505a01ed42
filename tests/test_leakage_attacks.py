"""Leakage (issue 7): observers, TD inversion, policy extraction, features; the encrypted eavesdropper."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.channels import ChannelSettings, IdealChannel, Message, Tap, build_channel
from confide.channels.encryption import CIPHERTEXT, ENVELOPE_OVERHEAD_BYTES
from confide.privacy.attacks import (
    FeatureSpec,
    extract,
    feature_names,
    fit_policy,
    one_hot,
    policy_fidelity,
    policy_from_parameters,
    reward_error,
    rewards_from_value_message,
    rewards_from_value_sequence,
    rewards_from_values,
    total_variation,
)
from confide.privacy.estimators import learned_attack
from confide.privacy.observers import (
    RunRecord,
    behaviour_only,
    colluding_neighbours,
    curious_neighbour,
    curious_server,
    link_eavesdropper,
    observe,
)

# --- TD inversion -----------------------------------------------------------------------------------


def test_td_inversion_recovers_rewards_exactly_on_a_hand_made_chain():
    # One episode of 4 steps, r = (1, 0, 2, −1), γ = 0.9, no bootstrap past the end.
    r = np.array([1.0, 0.0, 2.0, -1.0])
    v3 = -1.0
    v2 = 2.0 + 0.9 * v3  # 1.1
    v1 = 0.0 + 0.9 * v2  # 0.99
    v0 = 1.0 + 0.9 * v1  # 1.891
    v = np.array([v0, v1, v2, v3])
    ends = np.array([False, False, False, True])
    np.testing.assert_allclose(rewards_from_value_sequence(v, 0.9, ends), r, atol=1e-12)
    # VS's payload: (V(s), V(s')) pairs; the last next-value is whatever the critic says and is ignored.
    pairs = np.stack([v, np.array([v1, v2, v3, 7.0])], axis=1)
    np.testing.assert_allclose(rewards_from_values(pairs, 0.9, ends), r, atol=1e-12)
    err = reward_error(rewards_from_values(pairs, 0.9, ends), r)
    assert err.rmse < 1e-12 and err.max_abs < 1e-12 and err.correlation == pytest.approx(1.0)
    assert reward_error(np.full(4, r.mean()), r).normalised_rmse == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10), st.integers(1, 3), st.floats(0.5, 0.999), st.integers(0, 2**31 - 1))
def test_td_inversion_inverts_the_backward_recursion(T, B, gamma, seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, B))
    ends = rng.random((T, B)) < 0.3
    ends[-1] = True
    v = np.zeros((T, B))
    nxt = np.zeros(B)
    for t in reversed(range(T)):
        v[t] = r[t] + gamma * np.where(ends[t], 0.0, nxt)
        nxt = v[t]
    np.testing.assert_allclose(rewards_from_value_sequence(v, gamma, ends), r, atol=1e-9)


def test_a_value_message_reveals_the_senders_rewards_on_its_samples():
    v = np.array([[1.891, 0.99], [0.99, 1.1], [1.1, -1.0], [-1.0, 5.0]], dtype=np.float32)
    ends = np.array([False, False, False, True])
    msg = Message(0, 1, "value", 0, {"values": v[[1, 3]], "index": np.array([1, 3], dtype=np.int32)})
    idx, r_hat = rewards_from_value_message(msg, 0.9, ends)
    np.testing.assert_array_equal(idx, [1, 3])
    np.testing.assert_allclose(r_hat, [0.0, -1.0], atol=1e-6)


# --- policy extraction ------------------------------------------------------------------------------


def _true_policy(states: np.ndarray, w: np.ndarray) -> np.ndarray:
    z = states @ w
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_total_variation_is_half_l1():
    assert total_variation([1.0, 0.0], [0.0, 1.0]) == 1.0
    assert total_variation([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert total_variation([0.7, 0.2, 0.1], [0.5, 0.3, 0.2]) == pytest.approx(0.2)


def test_shared_distributions_reveal_the_policy_and_behaviour_only_approximates_it():
    rng = np.random.default_rng(0)
    grid = np.eye(6)  # six discrete states, one-hot
    w = rng.normal(size=(6, 3)) * 2
    visited = grid[rng.integers(0, 6, 400)]
    true = _true_policy(visited, w)
    held_out = grid  # every state, as the policy's held-out evaluation set
    shared = fit_policy(visited, true, "nearest")  # AS/SS: exact probabilities on the batch
    assert policy_fidelity(shared(held_out), _true_policy(held_out, w)).mean_tv < 1e-12
    actions = np.array([rng.choice(3, p=p) for p in true])
    cloned = fit_policy(visited, one_hot(actions, 3), "nearest")  # T0: the public actions only
    fid = policy_fidelity(cloned(held_out), _true_policy(held_out, w))
    assert 0.01 < fid.mean_tv < 0.2  # ~ sqrt(A / visits per state): worse than sharing, far from blind


def test_softmax_extractor_generalises_to_unvisited_states():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 4))
    train, test = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    policy = fit_policy(train, _true_policy(train, w), "softmax", l2=1e-6)
    assert policy_fidelity(policy(test), _true_policy(test, w)).mean_tv < 0.02


def test_shared_parameters_give_the_policy_exactly():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    msg = Message(0, 1, "policy_params", 0, {"params": w.ravel()}).roundtrip()
    policy = policy_from_parameters(msg.payload["params"], lambda p, s: _true_policy(s, p.reshape(3, 4)))
    states = rng.normal(size=(50, 3))
    fid = policy_fidelity(policy(states), _true_policy(states, w))
    assert fid.max_tv < 1e-6 and fid.argmax_agreement == 1.0


# --- observers --------------------------------------------------------------------------------------


def _record(wire: bool = False) -> RunRecord:
    """Three agents and a central unit (node 3): a policy ring, rewards up and advantages down."""
    msgs = [
        Message(s, (s + 1) % 3, "policy", 0, {"probs": np.full((2, 2), 0.5, np.float32)}) for s in range(3)
    ]
    msgs += [Message(s, 3, "reward", 1, {"rewards": np.full(2, float(s), np.float32)}) for s in range(3)]
    msgs += [Message(3, s, "advantage", 1, {"advantages": np.zeros(2, np.float32)}) for s in range(3)]
    msgs.append(Message(1, 0, "policy", 2, {"probs": np.full((2, 2), 0.5, np.float32)}))
    states = np.zeros((2, 1, 4), np.float32)
    actions = np.zeros((2, 1, 3), np.int64)
    ct = [m.with_payload({CIPHERTEXT: np.zeros(m.payload_bytes() + 28, np.uint8)}) for m in msgs]
    return RunRecord(tuple(msgs), states, actions, 2, tuple(ct) if wire else None)


def test_each_threat_model_sees_what_its_docstring_says():
    rec = _record()
    assert behaviour_only(rec).messages == ()
    assert {(m.sender, m.kind) for m in curious_neighbour(rec, 1).messages} == {
        (0, "policy"),
        (3, "advantage"),
    }
    assert {(m.sender, m.receiver) for m in link_eavesdropper(rec, (0, 1)).messages} == {(0, 1), (1, 0)}
    assert curious_server(rec).messages == rec.plaintext
    pooled = colluding_neighbours(rec, (1, 2)).messages
    assert len(pooled) == len(curious_neighbour(rec, 1).messages) + len(curious_neighbour(rec, 2).messages)
    assert observe(rec, "T4", (1, 2)).messages == pooled
    assert observe(rec, "T0").threat == "T0"
    with pytest.raises(ValueError):
        observe(rec, "T1", (1, 2))
    with pytest.raises(ValueError):
        observe(rec, "T5")  # type: ignore[arg-type]


def test_the_eavesdropper_reads_the_wire_and_neighbours_read_plaintext():
    rec = _record(wire=True)
    assert all(set(m.payload) == {CIPHERTEXT} for m in link_eavesdropper(rec, (0, 1)).messages)
    assert all(CIPHERTEXT not in m.payload for m in curious_neighbour(rec, 1).messages)


def test_features_have_a_fixed_length_and_named_entries():
    rec = _record()
    spec = FeatureSpec()
    lengths = {extract(observe(rec, t, o), 0, spec).size for t, o in [("T0", ()), ("T1", (1,)), ("T3", ())]}
    assert len(lengths) == 1
    names = feature_names(curious_server(rec), 0, spec)
    assert len(names) == lengths.pop() and len(set(names)) == len(names)
    x = dict(zip(names, extract(curious_server(rec), 0, spec), strict=True))
    assert x["reward/from_target/count"] == 1 and x["reward/others/count"] == 2
    assert x["advantage/to_target/count"] == 1
    assert x["policy/others/first_round"] == 0 and x["policy/to_target/last_round"] == 2
    assert x["policy/from_target/col0_mean"] == pytest.approx(0.5)
    assert x["reward/others/mean"] == pytest.approx(1.5)  # rewards 1 and 2 of agents 1, 2


def test_the_td_feature_of_a_neighbour_reads_the_reward_level():
    """A T1 neighbour of a VS agent reads its mean reward off the shared values (γ known)."""
    states, actions = np.zeros((3, 1, 1), np.float32), np.zeros((3, 1, 2), np.int64)
    for level in (-1.0, 0.0, 2.5):
        v = np.array([level * (1 + 0.9 + 0.81), level * (1 + 0.9), level], np.float32)
        pairs = np.stack([v, np.append(v[1:], 0)], axis=1)
        rec = RunRecord((Message(0, 1, "value", 0, {"values": pairs}),), states, actions, 2)
        view = curious_neighbour(rec, 1)
        x = dict(zip(feature_names(view, 0), extract(view, 0, FeatureSpec(gamma=0.9)), strict=True))
        assert x["value/from_target/td_reward_mean"] == pytest.approx(level, abs=1e-5)


# --- the encrypted link -----------------------------------------------------------------------------


def _run(secret: int, seed: int) -> tuple[RunRecord, int]:
    """One run on two agents: three rounds of policy messages whose content depends on the secret (which
    action agent 0 favours) and whose size does not; returns the record (plaintext and wire taps)."""
    rng = np.random.default_rng(seed)
    wire_taps: list[Tap] = []

    def wire(channel):
        wire_taps.append(Tap(channel, keep_payloads=True))
        return wire_taps[-1]

    stack = build_channel(ChannelSettings(encrypt=True), 2, rng.spawn(1)[0], IdealChannel(), wire=wire)
    plain = Tap(stack, keep_payloads=True)
    alpha = np.array([3.0, 1.0]) if secret else np.array([1.0, 3.0])
    for rnd in range(3):
        probs0 = rng.dirichlet(alpha, size=16).astype(np.float32)
        probs1 = rng.dirichlet([2.0, 2.0], size=16).astype(np.float32)
        plain.exchange(
            rnd,
            [
                Message(0, 1, "policy", rnd, {"probs": probs0}),
                Message(1, 0, "policy", rnd, {"probs": probs1}),
            ],
        )
    states = rng.normal(size=(4, 2, 3)).astype(np.float32)  # behaviour independent of the secret
    actions = rng.integers(0, 2, size=(4, 2, 2))
    return RunRecord.from_taps(plain, states, actions, 2, wire=wire_taps[0]), secret


def test_an_eavesdropper_on_an_encrypted_link_learns_nothing_beyond_sizes():
    runs = [_run(s, 1000 + k) for k, s in enumerate(np.random.default_rng(3).integers(0, 2, 240))]
    secrets = np.array([s for _, s in runs])
    sealed = np.array([extract(link_eavesdropper(r, (0, 1)), 0) for r, _ in runs])
    opened = np.array(
        [
            extract(link_eavesdropper(RunRecord(r.plaintext, r.states, r.actions, 2), (0, 1)), 0)
            for r, _ in runs
        ]
    )

    view = link_eavesdropper(runs[0][0], (0, 1))
    assert all(set(m.payload) == {CIPHERTEXT} for m in view.messages)
    plain_size = runs[0][0].plaintext[0].payload_bytes()
    assert {m.payload_bytes() for r, _ in runs for m in link_eavesdropper(r, (0, 1)).messages} == {
        plain_size + ENVELOPE_OVERHEAD_BYTES
    }
    names = feature_names(view, 0)
    sizes = [
        i for i, n in enumerate(names) if n.split("/")[-1].startswith(("bytes", "count", "round", "rounds"))
    ]
    assert np.ptp(sealed[:, sizes], axis=0).max() == 0  # sizes, counts and timing: identical in every run

    tr, te = slice(0, 120), slice(120, 240)
    hidden = learned_attack(sealed[tr], secrets[tr], sealed[te], secrets[te], np.random.default_rng(4))
    assert hidden.auc.contains(0.5) and hidden.bits.contains(0.0)
    seen = learned_attack(opened[tr], secrets[tr], opened[te], secrets[te], np.random.default_rng(4))
    assert seen.auc.low > 0.9 and seen.bits.low > 0.5
