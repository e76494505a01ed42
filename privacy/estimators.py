"""The learned attack and its metrics: how much an observer's features tell about a secret (issue 7).

Protocol. Shadow runs with secrets drawn from a known prior train an attacker (features → secret);
held-out runs with disjoint seeds evaluate it. Features come from ``confide.privacy.attacks.extract``.

- Binary secret (``learned_attack``): L2-regularised logistic regression on standardised features
  (the intercept shrunk towards the prior's log-odds with the same penalty), the penalty chosen by
  stratified k-fold cross-validated log-loss on the training runs among ``L2_GRID``; the prior-only
  attacker (q = prior) is taken instead whenever its loss is within one standard error of the best, so
  an attacker with nothing to learn does not pay for fitting noise (which biases the raw bits below 0).
  The predictive probability is mixed with the prior, q = (1 − α) q_model + α·prior (α = ``prior_mix``,
  so one confident mistake costs at most log₂ 1/(α·prior) bits). Metrics on the held-out runs:
  AUC (Mann–Whitney, ties count ½); TPR at FPR ≤ 1 % (the largest TPR among thresholds whose empirical
  FPR is at most 1 %, i.e. at most ⌊0.01·n_neg⌋ false positives); and

      bits = H(S) − CE,   CE = −(1/n) Σ log₂ q(s_k | x_k),

  H(S) the prior's entropy. For any predictor q, H(S) − E[−log₂ q(S|X)] ≤ I(S; X) (Barber & Agakov
  2003), so ``bits`` estimates a *lower bound* on the mutual information between what the observer sees
  and the secret; it is reported raw (may be negative: a miscalibrated attacker) and clipped at 0.
- Continuous secret (``learned_regression``): ridge regression, Gaussian predictive N(ŷ, σ²) with σ²
  the out-of-fold mean squared error; bits = h(S) − CE with the prior's differential entropy h(S).

Intervals are 95 % percentile bootstraps over held-out runs (runs resampled with replacement, not
stratified: the secrets of held-out runs are draws from the prior, and the bits estimate varies with
their class mix) from the caller's ``numpy.random.Generator``. They cover the sampling of the test
runs, not the training runs or the choice of features.

Controls: chance (AUC ½, TPR = the FPR, 0 bits); ``shuffled_control`` (the same attack with secrets
permuted within train and within test: must land on chance); and the T0 baseline: ``compare`` gives the
paired-bootstrap difference between two attacks on the same held-out runs, e.g. a threat model's
features against behaviour-only features (leakage in excess of behaviour). ``leakage_with_controls``
runs all three.

``empirical_epsilon`` audits a DP claim from attack scores on neighbouring datasets (see there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import minimize

L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval [low, high]."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


# ---------------------------------------------------------------------------------------------------
# metrics (pure)


def binary_entropy_bits(p: float) -> float:
    """H(Bernoulli(p)) in bits."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability, got {p}")
    return float(-sum(x * np.log2(x) for x in (p, 1.0 - p) if x > 0))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative) + ½ P(tie)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.01) -> float:
    """The largest TPR of a threshold rule "positive iff score > t" whose empirical FPR is ≤ ``fpr``."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    neg = np.sort(s[~y])[::-1]
    allowed = int(np.floor(fpr * len(neg) + 1e-9))  # false positives allowed
    if allowed >= len(neg):
        return 1.0
    return float((s[y] > neg[allowed]).mean())


def cross_entropy_bits(prob_one: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log₂ q(label) of predicted probabilities ``prob_one`` = q(secret = 1)."""
    q, y = np.asarray(prob_one, dtype=np.float64), np.asarray(labels, dtype=bool)
    return float(-np.mean(np.log2(np.where(y, q, 1.0 - q))))


# ---------------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class _Standardiser:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> _Standardiser:
        sd = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(sd > 1e-12 * (1 + np.abs(x).max(axis=0)), sd, np.inf))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale  # constant training columns become 0


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, b0: float = 0.0) -> np.ndarray:
    """[w, b] minimising mean log-loss of σ(wᵀx + b) + l2 (‖w‖² + (b − b0)²), by L-BFGS.

    The intercept is shrunk towards ``b0`` (the prior's log-odds), not left free: a free intercept
    learns the training runs' class mix, whose sampling error costs held-out bits under the null.
    """
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    sign = np.where(y, 1.0, -1.0)
    centre = np.append(np.zeros(x.shape[1]), b0)

    def loss(wb: np.ndarray) -> tuple[float, np.ndarray]:
        margin = sign * (xb @ wb)
        d = wb - centre
        grad = xb.T @ (-sign * _sigmoid(-margin)) / len(y) + 2 * l2 * d
        return float(np.logaddexp(0.0, -margin).mean() + l2 * d @ d), grad

    res = minimize(loss, centre, jac=True, method="L-BFGS-B", options={"gtol": 1e-9})
    return res.x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _predict_logistic(wb: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _sigmoid(x @ wb[:-1] + wb[-1])


def _fit_ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """[w, b] minimising mean squared error + l2 ‖w‖² (closed form, intercept unpenalised)."""
    xm, ym = x.mean(axis=0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc / len(y) + l2 * np.eye(x.shape[1]), xc.T @ (y - ym) / len(y))
    return np.append(w, ym - xm @ w)


def _folds(labels: np.ndarray | None, n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """k disjoint test-index sets covering 0..n-1 (stratified by label when given)."""
    fold = np.empty(n, dtype=np.int64)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels), np.flatnonzero(~labels)]
    for g in groups:
        fold[rng.permutation(g)] = np.arange(len(g)) % k
    return [np.flatnonzero(fold == f) for f in range(k)]


def _choose_l2(
    x: np.ndarray,
    y: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
    held_out_loss: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    folds: list[np.ndarray],
    grid: tuple[float, ...],
) -> tuple[float, float]:
    """The penalty with the lowest mean out-of-fold loss, and that loss; but ``inf`` (the prior-only
    attacker, if in ``grid``) whenever its loss is within one standard error (over runs) of the lowest:
    under the null the minimum alone picks whichever fit of noise got lucky on the folds.
    """
    means, ses = [], []
    for l2 in grid:
        losses = np.empty(len(y))
        for test in folds:
            train = np.setdiff1d(np.arange(len(y)), test)
            losses[test] = held_out_loss(fit(x[train], y[train], l2), x[test], y[test])
        means.append(losses.mean())
        ses.append(losses.std(ddof=1) / np.sqrt(len(y)))
    best = int(np.argmin(means))
    null = [i for i, l2 in enumerate(grid) if np.isinf(l2)]
    if null and means[null[0]] <= means[best] + ses[best]:
        best = null[0]
    return grid[best], float(means[best])


# ---------------------------------------------------------------------------------------------------
# the learned attack


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Held-out performance of one learned attack on a binary secret.

    ``l2`` is the penalty cross-validation chose; ``inf`` means the prior-only attacker won (no
    feature helped on the training runs), whose scores are all equal to the prior: AUC ½, TPR 0
    (the strict threshold rule never fires on a tie), bits exactly 0 when the prior is ½.
    ``scores`` are the held-out predictive probabilities q(secret = 1 | features) ``[n_test]``, aligned
    with ``secrets``; ``bits`` is clipped at 0, ``bits_raw`` is not.
    """

    auc: Interval
    tpr_at_fpr: Interval
    bits: Interval
    bits_raw: Interval
    fpr: float
    cross_entropy_bits: float
    prior_entropy_bits: float
    l2: float
    n_train: int
    n_test: int
    scores: np.ndarray
    secrets: np.ndarray

    chance_auc = 0.5
    chance_bits = 0.0

    @property
    def chance_tpr(self) -> float:
        return self.fpr


def _as_binary(secrets: np.ndarray, name: str) -> np.ndarray:
    s = np.asarray(secrets)
    if s.ndim != 1 or not np.isin(s, (0, 1)).all():
        raise ValueError(f"{name} must be a 1-D array of 0/1 (or bool), got shape {s.shape}")
    return s.astype(bool)


def _as_features(x: np.ndarray, n: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != n or not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite [n_runs={n}, F], got shape {a.shape}")
    return a


def _binary_metrics(
    q: np.ndarray, y: np.ndarray, fpr: float, h: float, idx: np.ndarray
) -> tuple[float, float, float]:
    """(AUC, TPR at ``fpr``, H − CE) on the runs ``idx``; AUC and TPR are nan if a class is missing."""
    bits = h - cross_entropy_bits(q[idx], y[idx])
    if y[idx].all() or not y[idx].any():
        return float("nan"), float("nan"), bits
    return auc(q[idx], y[idx]), tpr_at_fpr(q[idx], y[idx], fpr), bits


def _interval(estimate: float, samples: np.ndarray, level: float) -> Interval:
    lo, hi = np.nanquantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(lo), float(hi))


def learned_attack(
    features_train: np.ndarray,
    secrets_train: np.ndarray,
    features_test: np.ndarray,
    secrets_test: np.ndarray,
    rng: np.random.Generator,
    *,
    prior: float = 0.5,
    fpr: float = 0.01,
    n_bootstrap: int = 1000,
    folds: int = 5,
    l2_grid: tuple[float, ...] = L2_GRID,
    prior_mix: float = 1e-3,
) -> AttackResult:
    """Train on shadow runs, evaluate on held-out runs (disjoint seeds: the caller's job).

    Args:
        features_train, features_test: ``[n, F]`` from ``extract``, same spec and threat model.
        secrets_train, secrets_test: ``[n]`` 0/1 secrets.
        rng: drives the CV folds and the bootstrap (a fixed seed pins every number).
        prior: P(secret = 1) of the known prior (H(S) is its entropy; the mixing target for ``prior_mix``).
        fpr: the false-positive rate of the TPR metric.
    """
    y_tr, y_te = _as_binary(secrets_train, "secrets_train"), _as_binary(secrets_test, "secrets_test")
    x_tr = _as_features(features_train, len(y_tr), "features_train")
    x_te = _as_features(features_test, len(y_te), "features_test")
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"train has {x_tr.shape[1]} features, test {x_te.shape[1]}")
    if not 0 < prior < 1 or not 0 <= prior_mix < 1:
        raise ValueError(f"prior must be in (0, 1) and prior_mix in [0, 1), got {prior}, {prior_mix}")
    k = min(folds, int(y_tr.sum()), int((~y_tr).sum()))
    if k < 2 or y_te.all() or not y_te.any():
        raise ValueError("need at least 2 training runs of each secret and both secrets among test runs")

    scale = _Standardiser.fit(x_tr)
    z_tr, z_te = scale(x_tr), scale(x_te)

    def fold_loss(wb: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        q = (1 - prior_mix) * _predict_logistic(wb, x) + prior_mix * prior
        return -np.log(np.where(y, q, 1 - q))

    def fit(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
        b0 = np.log(prior / (1 - prior))
        if np.isinf(l2):  # the prior-only attacker: q = prior whatever it sees
            return np.append(np.zeros(x.shape[1]), b0)
        return _fit_logistic(x, y, l2, b0)

    folds_tr = _folds(y_tr, len(y_tr), k, rng)
    l2, _ = _choose_l2(z_tr, y_tr, fit, fold_loss, folds_tr, (*l2_grid, np.inf))
    q = (1 - prior_mix) * _predict_logistic(fit(z_tr, y_tr, l2), z_te) + prior_mix * prior

    h = binary_entropy_bits(prior)
    n = len(y_te)
    boot = np.array([_binary_metrics(q, y_te, fpr, h, rng.choice(n, n)) for _ in range(n_bootstrap)])
    ce = cross_entropy_bits(q, y_te)
    raw = _interval(h - ce, boot[:, 2], LEVEL)
    return AttackResult(
        auc=_interval(auc(q, y_te), boot[:, 0], LEVEL),
        tpr_at_fpr=_interval(tpr_at_fpr(q, y_te, fpr), boot[:, 1], LEVEL),
        bits=Interval(max(raw.estimate, 0.0), max(raw.low, 0.0), max(raw.high, 0.0)),
        bits_raw=raw,
        fpr=fpr,
        cross_entropy_bits=ce,
        prior_entropy_bits=h,
        l2=l2,
        n_train=len(y_tr),
        n_test=len(y_te),
        scores=q,
        secrets=y_te.astype(np.int64),
    )


def shuffled_control(
    features_train: np.ndarray,
    secrets_train: np.ndarray,
    features_test: np.ndarray,
    secrets_test: np.ndarray,
    rng: np.random.Generator,
    **kwargs,
) -> AttackResult:
    """The same attack with the secrets permuted within train and within test (no link to the features
    is left): its intervals must contain chance, or the pipeline leaks labels or overfits its metrics."""
    perm_rng, attack_rng = rng.spawn(2)
    s_tr = perm_rng.permutation(np.asarray(secrets_train))
    s_te = perm_rng.permutation(np.asarray(secrets_test))
    return learned_attack(features_train, s_tr, features_test, s_te, attack_rng, **kwargs)


@dataclass(frozen=True)
class Excess:
    """Paired difference a − b of two attacks on the same held-out runs."""

    auc: Interval
    bits: Interval
    """Difference of the raw bits (the difference of clipped values is not a difference of bounds)."""


def compare(a: AttackResult, b: AttackResult, rng: np.random.Generator, n_bootstrap: int = 1000) -> Excess:
    """ΔAUC and Δbits of ``a`` over ``b`` with paired bootstrap intervals (same resamples for
    both), e.g. a threat model over its T0 baseline: leakage in excess of behaviour."""
    if not np.array_equal(a.secrets, b.secrets) or a.prior_entropy_bits != b.prior_entropy_bits:
        raise ValueError("compare needs two attacks on the same held-out runs and prior")
    y = a.secrets.astype(bool)
    boot = np.array(
        [
            np.subtract(
                _binary_metrics(a.scores, y, a.fpr, 0.0, i), _binary_metrics(b.scores, y, b.fpr, 0.0, i)
            )
            for i in (rng.choice(len(y), len(y)) for _ in range(n_bootstrap))
        ]
    )[:, [0, 2]]
    return Excess(
        auc=_interval(a.auc.estimate - b.auc.estimate, boot[:, 0], LEVEL),
        bits=_interval(a.bits_raw.estimate - b.bits_raw.estimate, boot[:, 1], LEVEL),
    )


@dataclass(frozen=True, eq=False)
class LeakageReport:
    """An attack, its shuffled-secret control, its T0 baseline and the excess over that baseline."""

    attack: AttackResult
    shuffled: AttackResult
    baseline: AttackResult
    excess: Excess


def leakage_with_controls(
    features_train: np.ndarray,
    features_test: np.ndarray,
    baseline_train: np.ndarray,
    baseline_test: np.ndarray,
    secrets_train: np.ndarray,
    secrets_test: np.ndarray,
    rng: np.random.Generator,
    **kwargs,
) -> LeakageReport:
    """``learned_attack`` on a threat model's features, its ``shuffled_control``, the same attack on the
    T0 (behaviour-only) features of the same runs, and ``compare`` of the first with the third.
    ``kwargs`` go to ``learned_attack`` (``n_bootstrap`` also to ``compare``)."""
    r_attack, r_shuffled, r_baseline, r_compare = rng.spawn(4)
    s_tr, s_te = secrets_train, secrets_test
    attack = learned_attack(features_train, s_tr, features_test, s_te, r_attack, **kwargs)
    shuffled = shuffled_control(features_train, s_tr, features_test, s_te, r_shuffled, **kwargs)
    baseline = learned_attack(baseline_train, s_tr, baseline_test, s_te, r_baseline, **kwargs)
    n_boot = kwargs.get("n_bootstrap", 1000)
    return LeakageReport(attack, shuffled, baseline, compare(attack, baseline, r_compare, n_boot))


# ---------------------------------------------------------------------------------------------------
# continuous secrets


@dataclass(frozen=True, eq=False)
class RegressionResult:
    """Held-out performance of a learned attack on a continuous secret."""

    r2: Interval
    rmse: Interval
    bits: Interval
    bits_raw: Interval
    predictive_std: float
    prior_entropy_bits: float
    l2: float
    predictions: np.ndarray
    secrets: np.ndarray


def learned_regression(
    features_train: np.ndarray,
    secrets_train: np.ndarray,
    features_test: np.ndarray,
    secrets_test: np.ndarray,
    rng: np.random.Generator,
    *,
    prior_entropy_bits: float,
    n_bootstrap: int = 1000,
    folds: int = 5,
    l2_grid: tuple[float, ...] = L2_GRID,
) -> RegressionResult:
    """Ridge attack on a real-valued secret (e.g. a reward parameter drawn from a continuous prior).

    ``prior_entropy_bits`` is the prior's differential entropy in bits (uniform on [a, b]: log₂(b − a);
    N(μ, s²): ½ log₂(2πe s²)). The predictive law is N(ŷ, σ²), σ² the out-of-fold MSE at the chosen
    penalty, so bits = h(S) − mean −log₂ N(s; ŷ, σ²) lower-bounds I(S; X) as for a binary secret.
    """
    y_tr = np.asarray(secrets_train, dtype=np.float64)
    y_te = np.asarray(secrets_test, dtype=np.float64)
    x_tr = _as_features(features_train, len(y_tr), "features_train")
    x_te = _as_features(features_test, len(y_te), "features_test")
    k = min(folds, len(y_tr))
    if k < 2 or len(y_te) < 2:
        raise ValueError("need at least 2 training and 2 test runs")
    scale = _Standardiser.fit(x_tr)
    z_tr, z_te = scale(x_tr), scale(x_te)

    def fold_loss(wb: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x @ wb[:-1] + wb[-1] - y) ** 2

    l2, mse = _choose_l2(z_tr, y_tr, _fit_ridge, fold_loss, _folds(None, len(y_tr), k, rng), l2_grid)
    wb = _fit_ridge(z_tr, y_tr, l2)
    pred = z_te @ wb[:-1] + wb[-1]
    var = max(mse, 1e-300)
    nll_bits = 0.5 * np.log2(2 * np.pi * var) + (y_te - pred) ** 2 / (2 * var * np.log(2))

    def metrics(i: np.ndarray) -> tuple[float, float, float]:
        err = pred[i] - y_te[i]
        sst = ((y_te[i] - y_te[i].mean()) ** 2).sum()
        r2 = 1 - (err**2).sum() / sst if sst > 0 else float("nan")
        return r2, float(np.sqrt((err**2).mean())), prior_entropy_bits - float(nll_bits[i].mean())

    boot = np.array([metrics(rng.choice(len(y_te), len(y_te))) for _ in range(n_bootstrap)])
    point = metrics(np.arange(len(y_te)))
    raw = _interval(point[2], boot[:, 2], LEVEL)
    return RegressionResult(
        r2=_interval(point[0], boot[~np.isnan(boot[:, 0]), 0], LEVEL),
        rmse=_interval(point[1], boot[:, 1], LEVEL),
        bits=Interval(max(raw.estimate, 0.0), max(raw.low, 0.0), max(raw.high, 0.0)),
        bits_raw=raw,
        predictive_std=float(np.sqrt(var)),
        prior_entropy_bits=prior_entropy_bits,
        l2=l2,
        predictions=pred,
        secrets=y_te,
    )


# ---------------------------------------------------------------------------------------------------
# empirical DP audit


@dataclass(frozen=True)
class EpsilonAudit:
    """An empirical lower bound on ε from one distinguishing test (see ``empirical_epsilon``)."""

    epsilon_lower: float
    """With probability ≥ ``confidence`` the mechanism is not (ε, δ)-DP for any ε below this."""
    epsilon_point: float
    """The plug-in value from the observed rates (inf when FPR = 0; not a bound)."""
    tpr: Interval
    fpr: Interval
    threshold: float
    delta: float
    confidence: float
    n_in: int
    n_out: int


def clopper_pearson(successes: int, trials: int, confidence: float = LEVEL) -> Interval:
    """Exact two-sided binomial interval (each tail (1 − confidence)/2)."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, trials >= 1; got {successes}/{trials}")
    tail = (1 - confidence) / 2
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    return Interval(successes / trials, lo, hi)


def empirical_epsilon(
    scores_in: np.ndarray,
    scores_out: np.ndarray,
    threshold: float,
    delta: float = 0.0,
    confidence: float = LEVEL,
) -> EpsilonAudit:
    """Empirical ε lower bound from attack scores on neighbouring datasets D (``scores_in``: runs whose
    data include the record/secret) and D′ (``scores_out``).

    The test says "D" iff score ≥ ``threshold``, which must be fixed *before* seeing these scores
    (choose it on separate runs), or the bound is biased upwards. With TPR = P(score ≥ t | D) and
    FPR = P(score ≥ t | D′), (ε, δ)-DP forces TPR ≤ e^ε FPR + δ and, for the complementary event,
    1 − FPR ≤ e^ε (1 − TPR) + δ, so

        ε ≥ max( ln((TPR − δ) / FPR),  ln((1 − FPR − δ) / (1 − TPR)) ).

    ``epsilon_point`` plugs in the observed rates. ``epsilon_lower`` plugs in the Clopper–Pearson lower
    bound of TPR and upper bound of FPR, each one-sided at (1 − confidence)/2, so both hold together
    with probability ≥ ``confidence`` (union bound) and the bound is valid at that level. Both are
    clipped at 0. (Jagielski et al. 2020; Nasr et al. 2021.)
    """
    s_in, s_out = np.asarray(scores_in, dtype=np.float64), np.asarray(scores_out, dtype=np.float64)
    if s_in.size == 0 or s_out.size == 0:
        raise ValueError("need scores on both neighbouring datasets")
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    tpr = clopper_pearson(int((s_in >= threshold).sum()), s_in.size, confidence)
    fpr = clopper_pearson(int((s_out >= threshold).sum()), s_out.size, confidence)
    return EpsilonAudit(
        epsilon_lower=_epsilon(tpr.low, fpr.high, delta),
        epsilon_point=_epsilon(tpr.estimate, fpr.estimate, delta),
        tpr=tpr,
        fpr=fpr,
        threshold=float(threshold),
        delta=float(delta),
        confidence=confidence,
        n_in=int(s_in.size),
        n_out=int(s_out.size),
    )


def _epsilon(tpr: float, fpr: float, delta: float) -> float:
    def log_ratio(num: float, den: float) -> float:
        if num <= 0:
            return 0.0
        return float("inf") if den <= 0 else float(np.log(num / den))

    return max(0.0, log_ratio(tpr - delta, fpr), log_ratio(1 - fpr - delta, 1 - tpr))
