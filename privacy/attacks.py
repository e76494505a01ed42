"""Analytic attacks on what observers see, and the features the learned attack reads (issue 7).

Three pieces, each a pure function of arrays or of an ``ObserverView``:

1. **Reward reconstruction by TD inversion.** A value function satisfies V(s_t) = r_t + γ V(s_{t+1})
   along a deterministic trajectory (no bootstrap past an episode's end, decision 11), so

       r̂_t = V(s_t) − γ (1 − end_t) V(s_{t+1}).

   VS sends exactly the pair (V_i(s_m), V_i(s'_m)) per sample (payload ``values [M, 2]``), so a
   neighbour recovers r_i on every shared sample; the error against the true r_i is then the critic's
   fitting error (plus the transition noise on stochastic environments: the identity holds in
   expectation over s_{t+1}). ``rewards_from_values``, ``reward_error``.
2. **Policy reconstruction.** Shared distributions (AS/SS ``probs [M, A]``) give π on the batch states;
   an extractor generalises them to held-out states (nearest neighbour, or softmax regression on soft
   targets). Shared parameters (VPS/PS ``params``) give the policy itself: the architecture is public.
   Behaviour cloning from the public joint actions is the T0 baseline of the same attack. Fidelity is
   the total variation ½ Σ_a |π̂(a|s) − π(a|s)| on held-out states. ``fit_policy``, ``policy_fidelity``.
3. **Features for the learned attack.** ``extract(view, target)`` turns one observer's view of one run
   into a fixed-length float64 vector: behaviour statistics, then per (message kind, role) block counts,
   sizes, timing and payload summary statistics. ``feature_names`` gives the matching names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize

from confide.channels.message import Message
from confide.privacy.observers import ObserverView

# ---------------------------------------------------------------------------------------------------
# 1. TD inversion


def rewards_from_values(values: np.ndarray, gamma: float, ends: np.ndarray | None = None) -> np.ndarray:
    """r̂ = V(s) − γ (1 − end) V(s') from (V(s), V(s')) pairs, VS's ``values`` payload.

    Args:
        values: ``[..., 2]`` the pairs (V(s_m), V(s'_m)).
        gamma: the discount γ of the critic (public: it is in the run's config).
        ends: ``[...]`` bool, the episode ends after sample m (public: the horizon is known); None = no end.
    Returns ``[...]`` float64 reward estimates.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.shape[-1:] != (2,):
        raise ValueError(f"values must be [..., 2] pairs (V(s), V(s')), got shape {v.shape}")
    cont = 1.0 if ends is None else 1.0 - np.asarray(ends, dtype=np.float64)
    return v[..., 0] - gamma * cont * v[..., 1]


def rewards_from_value_sequence(values: np.ndarray, gamma: float, ends: np.ndarray) -> np.ndarray:
    """r̂_t = V(s_t) − γ (1 − end_t) V(s_{t+1}) along time axis 0.

    Args:
        values: ``[T, ...]`` V(s_t) on consecutive states.
        ends: ``[T, ...]`` bool; the last step must end an episode (V(s_T) is not observed).
    """
    v = np.asarray(values, dtype=np.float64)
    e = np.asarray(ends, dtype=bool)
    if v.shape != e.shape:
        raise ValueError(f"values {v.shape} and ends {e.shape} differ")
    if not e[-1].all():
        raise ValueError("the last step must end an episode: V(s_T) is not in the sequence")
    nxt = np.concatenate([v[1:], np.zeros_like(v[:1])])
    return rewards_from_values(np.stack([v, nxt], axis=-1), gamma, e)


def rewards_from_value_message(
    message: Message, gamma: float, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The sender's rewards on the samples one VS ``value`` message covers.

    Args:
        ends: ``[M]`` bool, the update's flattened ``Rollout.ends`` (sample m = t·B + b).
    Returns (sample indices ``[M']`` int64, r̂ ``[M']`` float64).
    """
    values = message.payload["values"]
    index = message.payload.get("index")
    idx = np.arange(values.shape[0]) if index is None else np.asarray(index, dtype=np.int64)
    return idx, rewards_from_values(values, gamma, np.asarray(ends, dtype=bool)[idx])


@dataclass(frozen=True)
class RewardError:
    """How far reconstructed rewards are from the truth (same units as the reward)."""

    rmse: float
    mae: float
    max_abs: float
    normalised_rmse: float
    """rmse / std(true rewards): 0 is exact, ≈ 1 is no better than guessing the mean (nan if std = 0)."""
    correlation: float
    """Pearson correlation (nan when either side is constant)."""


def reward_error(estimate: np.ndarray, truth: np.ndarray) -> RewardError:
    """Error of ``estimate`` against ``truth`` (any matching shapes)."""
    r_hat = np.asarray(estimate, dtype=np.float64).ravel()
    r = np.asarray(truth, dtype=np.float64).ravel()
    if r_hat.shape != r.shape or r.size == 0:
        raise ValueError(f"estimate {r_hat.shape} and truth {r.shape} must match and be non-empty")
    err = r_hat - r
    rmse = float(np.sqrt(np.mean(err**2)))
    sd = float(r.std())
    both_vary = sd > 0 and r_hat.std() > 0
    return RewardError(
        rmse=rmse,
        mae=float(np.mean(np.abs(err))),
        max_abs=float(np.max(np.abs(err))),
        normalised_rmse=rmse / sd if sd > 0 else float("nan"),
        correlation=float(np.corrcoef(r_hat, r)[0, 1]) if both_vary else float("nan"),
    )


# ---------------------------------------------------------------------------------------------------
# 2. Policy reconstruction

Extractor = Literal["nearest", "softmax"]
Policy = Callable[[np.ndarray], np.ndarray]
"""A reconstructed policy: states ``[M, S]`` → probabilities ``[M, A]``."""


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """½ Σ_a |p(a) − q(a)| over the last axis, in [0, 1]."""
    return 0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum(axis=-1)


@dataclass(frozen=True)
class PolicyFidelity:
    """Extraction fidelity on held-out states."""

    mean_tv: float
    """Mean total variation between reconstructed and true π (0: exact; 1: disjoint supports)."""
    max_tv: float
    argmax_agreement: float
    """Fraction of states where the reconstructed and true most likely actions coincide."""


def policy_fidelity(reconstructed: np.ndarray, true: np.ndarray) -> PolicyFidelity:
    """Compare ``[M, A]`` reconstructed and true distributions on the same held-out states."""
    p, q = np.asarray(reconstructed), np.asarray(true)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"reconstructed {p.shape} and true {q.shape} must both be [M, A]")
    tv = total_variation(p, q)
    return PolicyFidelity(float(tv.mean()), float(tv.max()), float((p.argmax(-1) == q.argmax(-1)).mean()))


def distribution_rows(message: Message) -> tuple[np.ndarray, np.ndarray]:
    """(sample indices ``[M']`` int64, probabilities ``[M', A]`` float64) of one AS/SS message."""
    probs = np.asarray(message.payload["probs"], dtype=np.float64)
    index = message.payload.get("index")
    return (np.arange(probs.shape[0]) if index is None else np.asarray(index, dtype=np.int64)), probs


def one_hot(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """``[M]`` int actions → ``[M, A]`` float64 targets (behaviour cloning, the T0 policy attack)."""
    a = np.asarray(actions, dtype=np.int64).ravel()
    return np.eye(n_actions)[a]


def fit_policy(
    states: np.ndarray, targets: np.ndarray, extractor: Extractor = "nearest", l2: float = 1e-4
) -> Policy:
    """Generalise observed (state, distribution) pairs to a policy on any state.

    Args:
        states: ``[M, S]`` observed states.
        targets: ``[M, A]`` distributions seen there (shared ``probs``, or ``one_hot`` actions).
        extractor: ``nearest``: the mean target of the observed states nearest to the query (Euclidean;
            all ties averaged, so on a discrete state space it is the per-state empirical mean, and
            behaviour cloning gives the empirical action frequencies). ``softmax``: multinomial logistic
            regression on [states, 1] fitted to the soft targets (cross-entropy + l2 ‖W‖², L-BFGS).
    """
    x = np.asarray(states, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"states [M, S] and targets [M, A] must match, got {x.shape}, {y.shape}")
    if extractor == "nearest":
        return lambda query: _nearest(x, y, np.asarray(query, dtype=np.float64))
    if extractor == "softmax":
        return _softmax_regression(x, y, l2)
    raise ValueError(f"extractor must be 'nearest' or 'softmax', got {extractor!r}")


def _nearest(x: np.ndarray, y: np.ndarray, query: np.ndarray) -> np.ndarray:
    out = np.empty((query.shape[0], y.shape[1]))
    for k, q in enumerate(query):
        d = ((x - q) ** 2).sum(axis=1)
        out[k] = y[d <= d.min() + 1e-12].mean(axis=0)
    return out


def _softmax_regression(x: np.ndarray, y: np.ndarray, l2: float) -> Policy:
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    shape = (xb.shape[1], y.shape[1])

    def loss(w_flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = w_flat.reshape(shape)
        z = xb @ w
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        penalty = l2 * (w[:-1] ** 2).sum()
        grad = xb.T @ (np.exp(logp) - y) / x.shape[0]
        grad[:-1] += 2 * l2 * w[:-1]
        return float(-(y * logp).sum() / x.shape[0] + penalty), grad.ravel()

    w = minimize(loss, np.zeros(np.prod(shape)), jac=True, method="L-BFGS-B").x.reshape(shape)

    def policy(query: np.ndarray) -> np.ndarray:
        q = np.asarray(query, dtype=np.float64)
        z = np.hstack([q, np.ones((q.shape[0], 1))]) @ w
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    return policy


def policy_from_parameters(
    params: np.ndarray, forward: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Policy:
    """The policy a shared parameter vector defines (VPS/PS ``params``).

    ``forward(params, states [M, S]) -> probs [M, A]`` is the public architecture (Kerckhoffs: the
    attacker runs the same code), so the reconstruction is exact up to float32 rounding of the wire.
    """
    flat = np.asarray(params).copy()
    return lambda states: np.asarray(forward(flat, np.asarray(states)))


# ---------------------------------------------------------------------------------------------------
# 3. Features

KNOWN_KINDS: tuple[str, ...] = (
    "policy",
    "anticipation",
    "suggestion",
    "value",
    "critic_params",
    "policy_params",
    "reward",
    "advantage",
    "kl_stats",
)
Role = Literal["from_target", "to_target", "others", "all"]
_TIMING = (
    "count",
    "bytes_total",
    "bytes_mean",
    "bytes_min",
    "bytes_max",
    "rounds",
    "first_round",
    "last_round",
    "round_gap_mean",
    "per_round",
    "indexed_samples",
)
_CONTENT = ("mean", "std", "min", "max", "q10", "q50", "q90", "abs_mean")


@dataclass(frozen=True)
class FeatureSpec:
    """What ``extract`` computes; every run of a study must use the same spec (and env) for the vectors
    to line up."""

    kinds: tuple[str, ...] = KNOWN_KINDS
    """One block per kind, plus ``other`` for kinds not listed (nothing is silently dropped)."""
    columns: int = 8
    """Column means of 2-D payload arrays ([M, A] probs, [M, 2] values) for the first ``columns``
    columns, zero-padded."""
    gamma: float = 0.99
    """γ of the TD-inverted reward statistics of ``value`` blocks."""


def extract(view: ObserverView, target: int | None = None, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """``[F]`` float64 features of one observer's view of one run.

    Layout: behaviour (per-agent action frequencies ``[N·A]``, state mean and std ``[2S]``), then one
    block per kind in ``spec.kinds`` + ``other`` and per role. With ``target`` the roles are
    ``from_target`` (sent by the agent whose secret is attacked), ``to_target`` (addressed to it, e.g.
    CL's advantages) and ``others``; without, one role ``all``. A block holds counts, sizes and timing
    (``_TIMING``), summary statistics of every payload value except ``index`` arrays (``_CONTENT``; for
    ciphertext these are statistics of the ``ct`` bytes), the column means of 2-D arrays, and for
    ``value`` the mean and std of the TD-inverted rewards V(s) − γV(s′). An empty block is all zeros.
    F depends only on (N, A, S, target is None, spec).
    """
    return np.array([v for _, v in _features(view, target, spec)], dtype=np.float64)


def feature_names(
    view: ObserverView, target: int | None = None, spec: FeatureSpec = FeatureSpec()
) -> tuple[str, ...]:
    """Names of ``extract``'s entries, e.g. ``value/from_target/td_reward_mean``."""
    return tuple(name for name, _ in _features(view, target, spec))


def _features(view: ObserverView, target: int | None, spec: FeatureSpec) -> Iterator[tuple[str, float]]:
    yield from _behaviour(view)
    roles: tuple[Role, ...] = ("all",) if target is None else ("from_target", "to_target", "others")
    kinds = (*spec.kinds, "other")
    groups: dict[tuple[str, Role], list[Message]] = {(k, r): [] for k in kinds for r in roles}
    for m in view.messages:
        kind = m.kind if m.kind in spec.kinds else "other"
        if target is None:
            role: Role = "all"
        else:
            role = "from_target" if m.sender == target else "to_target" if m.receiver == target else "others"
        groups[(kind, role)].append(m)
    for kind in kinds:
        for role in roles:
            for name, value in _block(groups[(kind, role)], kind, spec):
                yield f"{kind}/{role}/{name}", value


def _behaviour(view: ObserverView) -> Iterator[tuple[str, float]]:
    actions = np.asarray(view.actions, dtype=np.int64).reshape(-1, view.n_agents)
    for i in range(view.n_agents):
        freq = np.bincount(actions[:, i], minlength=view.n_actions)[: view.n_actions] / max(len(actions), 1)
        for a in range(view.n_actions):
            yield f"behaviour/agent{i}/action{a}", float(freq[a])
    states = np.asarray(view.states, dtype=np.float64).reshape(-1, view.states.shape[-1])
    for stat, values in (("mean", states.mean(axis=0)), ("std", states.std(axis=0))):
        for d, v in enumerate(values):
            yield f"behaviour/state{d}/{stat}", float(v)


def _block(messages: Sequence[Message], kind: str, spec: FeatureSpec) -> Iterator[tuple[str, float]]:
    sizes = np.array([m.payload_bytes() for m in messages], dtype=np.float64)
    rounds = np.unique(np.array([m.round for m in messages], dtype=np.int64))
    indexed = sum(int(np.size(m.payload["index"])) for m in messages if "index" in m.payload)
    timing = (
        [
            len(messages),
            sizes.sum(),
            sizes.mean(),
            sizes.min(),
            sizes.max(),
            len(rounds),
            rounds[0],
            rounds[-1],
            np.diff(rounds).mean() if len(rounds) > 1 else 0.0,
            len(messages) / len(rounds),
            indexed,
        ]
        if messages
        else [0.0] * len(_TIMING)
    )
    yield from zip(_TIMING, (float(t) for t in timing), strict=True)

    arrays = [np.asarray(a, dtype=np.float64) for m in messages for k, a in m.payload.items() if k != "index"]
    flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    content = (
        [
            flat.mean(),
            flat.std(),
            flat.min(),
            flat.max(),
            *np.quantile(flat, (0.1, 0.5, 0.9)),
            np.abs(flat).mean(),
        ]
        if flat.size
        else [0.0] * len(_CONTENT)
    )
    yield from zip(_CONTENT, (float(c) for c in content), strict=True)

    rows = [_columns(a, spec.columns) for a in arrays if a.ndim == 2 and a.shape[0] > 0]
    col_means = np.concatenate(rows).mean(axis=0) if rows else np.zeros(spec.columns)
    for c in range(spec.columns):
        yield f"col{c}_mean", float(col_means[c])

    if kind == "value":
        pairs = [m.payload["values"] for m in messages if np.ndim(m.payload.get("values")) == 2]
        pairs = [p for p in pairs if p.shape[1] == 2 and p.shape[0] > 0]
        r_hat = rewards_from_values(np.concatenate(pairs), spec.gamma) if pairs else np.zeros(0)
        yield "td_reward_mean", float(r_hat.mean()) if r_hat.size else 0.0
        yield "td_reward_std", float(r_hat.std()) if r_hat.size else 0.0


def _columns(a: np.ndarray, width: int) -> np.ndarray:
    """``[M, C]`` → ``[M, width]``, truncated or zero-padded."""
    out = np.zeros((a.shape[0], width))
    k = min(width, a.shape[1])
    out[:, :k] = a[:, :k]
    return out
