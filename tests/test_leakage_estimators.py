"""Leakage estimators (issue 7): metrics against slow references, a planted secret of known strength,
the controls, the empirical DP audit and Opacus' golden ε."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from confide.privacy.attacks import extract
from confide.privacy.estimators import (
    auc,
    binary_entropy_bits,
    clopper_pearson,
    cross_entropy_bits,
    empirical_epsilon,
    leakage_with_controls,
    learned_attack,
    learned_regression,
    shuffled_control,
    tpr_at_fpr,
)
from confide.privacy.observers import RunRecord, curious_server

# --- metrics ----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_auc_equals_the_pairwise_definition(pairs):
    scores = np.array([s for s, _ in pairs], dtype=float)
    labels = np.array([y for _, y in pairs])
    if labels.all() or not labels.any():
        return
    pos, neg = scores[labels], scores[~labels]
    slow = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auc(scores, labels) == pytest.approx(slow)


def test_tpr_at_fpr_counts_at_most_the_allowed_false_positives():
    neg = np.arange(100) / 100  # 0.00 … 0.99
    pos = np.array([0.985, 0.995, 0.5, 2.0])
    s, y = np.concatenate([neg, pos]), np.r_[np.zeros(100, bool), np.ones(4, bool)]
    # 1 % of 100 negatives: one false positive allowed, so the threshold is the second-largest
    # negative (0.98), strictly: positives above it are 0.985, 0.995 and 2.0.
    assert tpr_at_fpr(s, y, 0.01) == 0.75
    assert tpr_at_fpr(s, y, 0.0) == 0.5  # above 0.99 only
    assert tpr_at_fpr(np.zeros(6), np.array([0, 0, 0, 1, 1, 1], bool), 0.01) == 0.0  # ties never fire


def test_entropies_in_bits():
    assert binary_entropy_bits(0.5) == 1.0 and binary_entropy_bits(1.0) == 0.0
    assert binary_entropy_bits(0.25) == pytest.approx(0.811278, abs=1e-6)
    assert cross_entropy_bits(np.full(4, 0.5), np.array([0, 1, 1, 0])) == 1.0
    assert cross_entropy_bits(np.array([0.25]), np.array([0])) == pytest.approx(np.log2(4 / 3))


# --- a planted secret -------------------------------------------------------------------------------


def _planted(delta: float, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Secret s ~ Bernoulli(½); features x = s·Δ·u + N(0, I) with u a unit vector (the first axis)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, n)
    x = rng.normal(size=(n, dim))
    x[:, 0] += delta * s
    return x, s


def _true_auc(delta: float) -> float:
    """Bayes AUC of N(0, 1) vs N(Δ, 1): P(X₁ > X₀) = Φ(Δ/√2)."""
    return float(stats.norm.cdf(delta / np.sqrt(2)))


def _true_bits(delta: float) -> float:
    """I(S; X) = 1 − E_x H(P(S=1 | x)) in bits, by quadrature."""

    def integrand(x: float) -> float:
        p0, p1 = stats.norm.pdf(x), stats.norm.pdf(x, delta)
        post = p1 / (p0 + p1)
        return 0.5 * (p0 + p1) * binary_entropy_bits(float(np.clip(post, 0.0, 1.0)))

    return 1.0 - integrate.quad(integrand, -12.0, 12.0 + delta, limit=200)[0]


@pytest.mark.parametrize("delta", [1.0, 2.0])
def test_the_attack_recovers_a_planted_secret_within_its_interval(delta):
    x, s = _planted(delta, 3000, 5, seed=int(delta * 10))
    result = learned_attack(x[:1500], s[:1500], x[1500:], s[1500:], np.random.default_rng(0))
    assert result.auc.contains(_true_auc(delta))
    assert result.bits_raw.contains(_true_bits(delta))
    assert result.bits.low > 0
    assert result.tpr_at_fpr.low > result.chance_tpr


def test_with_a_shuffled_secret_the_attack_reports_chance():
    x, s = _planted(2.0, 1000, 5, seed=7)
    control = shuffled_control(x[:500], s[:500], x[500:], s[500:], np.random.default_rng(1))
    assert control.auc.contains(0.5) and control.bits.contains(0.0)
    assert abs(control.bits_raw.estimate) < 0.01


def test_a_transcript_with_no_messages_carries_zero_bits():
    rng = np.random.default_rng(2)
    states, actions = rng.normal(size=(5, 2, 3)).astype(np.float32), rng.integers(0, 3, (5, 2, 2))
    secrets = rng.integers(0, 2, 200)
    views = [curious_server(RunRecord((), states, actions, 3)) for _ in secrets]
    x = np.array([extract(v, 0) for v in views])
    assert np.ptp(x, axis=0).max() == 0  # the extractor yields constant features
    result = learned_attack(x[:100], secrets[:100], x[100:], secrets[100:], np.random.default_rng(3))
    assert result.auc.estimate == 0.5 and result.bits.estimate == 0.0
    assert result.bits_raw.estimate == pytest.approx(0.0, abs=1e-12)  # the prior-only attacker


def test_leakage_in_excess_of_behaviour():
    """Behaviour carries Δ = 1 about the secret; messages add Δ = 1.5 more on another axis."""
    rng = np.random.default_rng(4)
    n = 1200
    s = rng.integers(0, 2, n)
    behaviour = rng.normal(size=(n, 3))
    behaviour[:, 0] += 1.0 * s
    messages = rng.normal(size=(n, 3))
    messages[:, 0] += 1.5 * s
    seen = np.hstack([behaviour, messages])
    tr, te = slice(0, 600), slice(600, n)
    report = leakage_with_controls(
        seen[tr], seen[te], behaviour[tr], behaviour[te], s[tr], s[te], np.random.default_rng(5)
    )
    assert report.baseline.auc.contains(_true_auc(1.0))
    assert report.attack.auc.contains(_true_auc(np.hypot(1.0, 1.5)))
    assert report.excess.auc.low > 0 and report.excess.bits.low > 0
    assert report.shuffled.auc.contains(0.5) and report.shuffled.bits.contains(0.0)
    # Messages that repeat behaviour add nothing: the excess interval contains 0.
    same = leakage_with_controls(
        np.hstack([behaviour, behaviour])[tr],
        np.hstack([behaviour, behaviour])[te],
        behaviour[tr],
        behaviour[te],
        s[tr],
        s[te],
        np.random.default_rng(6),
    )
    assert same.excess.auc.contains(0.0) and same.excess.bits.contains(0.0)


def test_regression_on_a_continuous_secret():
    """θ ~ U(0, 1) (h = 0 bits); x = θ + N(0, 0.1²): best linear R² = (1/12)/(1/12 + 0.01)."""
    rng = np.random.default_rng(8)
    theta = rng.random(1200)
    x = (theta + 0.1 * rng.normal(size=1200))[:, None]
    res = learned_regression(x[:600], theta[:600], x[600:], theta[600:], rng, prior_entropy_bits=0.0)
    assert res.r2.contains((1 / 12) / (1 / 12 + 0.01))
    assert res.predictive_std == pytest.approx(np.sqrt(1 / (1 / 0.01 + 12)), rel=0.15)
    assert res.bits.low > 1.0  # I(θ; x) ≈ −h(N(0, 0.1²)) = log₂(1 / (0.1·√(2πe))) ≈ 1.27 bits
    noise = rng.normal(size=(1200, 2))
    null = learned_regression(noise[:600], theta[:600], noise[600:], theta[600:], rng, prior_entropy_bits=0.0)
    assert null.bits.contains(0.0) and null.r2.high < 0.05


# --- empirical DP audit -----------------------------------------------------------------------------


def test_clopper_pearson_matches_scipy():
    for k, n in [(0, 20), (3, 20), (20, 20), (47, 1000)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        got = clopper_pearson(k, n, 0.95)
        assert (got.low, got.high) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_the_audit_of_the_laplace_mechanism_is_tight():
    """Laplace(b = 1) on a counting query (Δ = 1) is exactly ε = 1: beyond both means the tail ratio
    P(L + 1 ≥ t) / P(L ≥ t) = e, so a threshold fixed in advance at t = 3 gives ε̂ ≈ 1 and a lower bound
    just below it."""
    rng = np.random.default_rng(9)
    n = 200_000
    audit = empirical_epsilon(1.0 + rng.laplace(size=n), rng.laplace(size=n), threshold=3.0, delta=0.0)
    assert audit.epsilon_point == pytest.approx(1.0, abs=0.05)
    assert 0.85 < audit.epsilon_lower <= 1.0
    assert audit.tpr.contains(0.5 * np.exp(-2)) and audit.fpr.contains(0.5 * np.exp(-3))


def test_the_audit_formula_by_hand():
    scores_in = np.r_[np.ones(50), np.zeros(50)]  # TPR = 0.5
    scores_out = np.r_[np.ones(1), np.zeros(99)]  # FPR = 0.01
    audit = empirical_epsilon(scores_in, scores_out, threshold=0.5, delta=1e-5)
    assert audit.epsilon_point == pytest.approx(np.log((0.5 - 1e-5) / 0.01))
    lo_tpr, hi_fpr = clopper_pearson(50, 100).low, clopper_pearson(1, 100).high
    assert audit.epsilon_lower == pytest.approx(np.log((lo_tpr - 1e-5) / hi_fpr))
    assert empirical_epsilon(np.zeros(10), np.zeros(10), threshold=0.5).epsilon_lower == 0.0


# --- formal accounting ------------------------------------------------------------------------------


def test_opacus_golden_epsilon():
    """Subsampled Gaussian, σ = 1.5, q = 0.04, 2,250 steps, δ = 1e-5 → ε ≈ 7.329 (Opacus RDP).

    ``confide.privacy.accounting.GaussianAccountant`` fixes the sample rate at 1 (every release uses an
    agent's whole data), so this golden value is checked on Opacus directly."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(1.5, 0.04, 2250)]
    assert accountant.get_epsilon(delta=1e-5) == pytest.approx(7.329, abs=1e-3)


def test_same_seed_same_numbers_and_different_seeds_differ():
    x, s = _planted(1.0, 400, 3, seed=11)
    a = learned_attack(x[:200], s[:200], x[200:], s[200:], np.random.default_rng(0), n_bootstrap=200)
    b = learned_attack(x[:200], s[:200], x[200:], s[200:], np.random.default_rng(0), n_bootstrap=200)
    c = learned_attack(x[:200], s[:200], x[200:], s[200:], np.random.default_rng(1), n_bootstrap=200)
    assert (a.auc, a.bits_raw, a.tpr_at_fpr) == (b.auc, b.bits_raw, b.tpr_at_fpr)
    assert (a.auc.low, a.auc.high) != (c.auc.low, c.auc.high)
