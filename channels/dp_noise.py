"""Differential-privacy noise on what an agent shares: clip, add Gaussian or Laplace noise, and put
distributions back on the simplex. Sender side; the receiver sees only the noised arrays.

What is protected. For agent i, a *dataset* is everything private the agent computes its messages from
(its rewards, trajectories, networks). Each array whose name is in ``arrays`` (default ``probs``,
``values``, ``params``), in every message of agent i, is one release: the array x = f(D_i) is clipped
to norm C (L2 for Gaussian, L1 for Laplace, over the whole array), noised, and post-processed.

Neighbouring relation and sensitivity Δ (``neighbouring``):
- ``"replace"`` (default): D_i and D'_i are *any* two datasets of agent i, so two clipped releases
  differ by at most 2C: Δ = 2C. This protects everything the array could say.
- ``"zero_out"``: D'_i replaces agent i's data by a null whose release is the zero array: Δ = C
  (the add/remove convention Opacus uses per example).
Noise: Gaussian std σ·Δ (σ = ``noise_multiplier``, accounted by Opacus RDP, q = 1); Laplace scale
b = σ·Δ per element, so each release is (Δ/b = 1/σ)-DP. Everything the array does not carry
(sender, receiver, kind, round, message size, ``index`` arrays, arrays not named) is treated as public.

Post-processing (free in privacy): for kinds in ``DISTRIBUTION_KINDS`` the ``probs`` rows ``[M, A]``
are projected onto the probability simplex (Euclidean projection), mixed with the uniform
distribution with weight ``uniform_mix`` (default 0.05, so every probability is at least mix/A), then cast
back to the sender's dtype. The mix exists because receivers divide by shared probabilities (SS's ξ_{N_i}
divides by the peer's π^{jj}_old): a projection alone returns exact zeros, and with seven peers the
product of ratios overflowed float32 and diverged in every SS run of the privacy-utility sweep. Clipping happens before noise and biases the release towards zero when C is below the norm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from confide.channels.channel import Channel, Inbox
from confide.channels.message import Message
from confide.privacy.accounting import GaussianAccountant, LaplaceAccountant, PrivacyAccountant

Mechanism = Literal["gaussian", "laplace"]
Neighbouring = Literal["replace", "zero_out"]
DISTRIBUTION_KINDS: tuple[str, ...] = ("policy", "anticipation", "suggestion")
DISTRIBUTION_ARRAY = "probs"
DEFAULT_NOISED_ARRAYS: tuple[str, ...] = ("probs", "values", "params")
DEFAULT_UNIFORM_MIX = 0.05


def project_onto_simplex(rows: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row (last axis) onto {p ≥ 0, Σp = 1}; float64 out.

    The sort-based algorithm (Held, Wolfe & Crowder 1974; Duchi et al. 2008): with u sorted
    descending, ρ = max{j : u_j − (Σ_{k≤j} u_k − 1)/j > 0}, θ = (Σ_{k≤ρ} u_k − 1)/ρ, p = max(y − θ, 0).
    """
    y = np.asarray(rows, dtype=np.float64)
    if y.shape[-1] == 0:
        raise ValueError("cannot project an empty row onto the simplex")
    u = -np.sort(-y, axis=-1)
    excess = np.cumsum(u, axis=-1) - 1.0
    j = np.arange(1, y.shape[-1] + 1)
    positive = u - excess / j > 0  # true for a prefix of j, always for j = 1
    rho = positive.shape[-1] - np.argmax(positive[..., ::-1], axis=-1)
    theta = np.take_along_axis(excess, (rho - 1)[..., None], axis=-1) / rho[..., None]
    return np.maximum(y - theta, 0.0)


def clip_to_norm(x: np.ndarray, bound: float, order: Literal[1, 2]) -> np.ndarray:
    """``x`` scaled down (never up) so that its L1 or L2 norm over all elements is at most ``bound``."""
    flat = np.asarray(x, dtype=np.float64)
    norm = float(np.abs(flat).sum()) if order == 1 else float(np.sqrt(np.square(flat).sum()))
    return flat * (bound / norm) if norm > bound else flat


def sensitivity(clip_norm: float, neighbouring: Neighbouring) -> float:
    """Δ of one clipped release under the neighbouring relation (see the module docstring)."""
    return 2.0 * clip_norm if neighbouring == "replace" else float(clip_norm)


class DPNoiseLayer:
    """Clips and noises the named float arrays of every outgoing message; counts releases per sender."""

    def __init__(
        self,
        inner: Channel,
        *,
        mechanism: Mechanism,
        clip_norm: float,
        noise_multiplier: float,
        rng: np.random.Generator,
        neighbouring: Neighbouring = "replace",
        arrays: Sequence[str] = DEFAULT_NOISED_ARRAYS,
        uniform_mix: float = DEFAULT_UNIFORM_MIX,
    ) -> None:
        if mechanism not in ("gaussian", "laplace"):
            raise ValueError(f"unknown DP mechanism {mechanism!r}")
        if neighbouring not in ("replace", "zero_out"):
            raise ValueError(f"unknown neighbouring relation {neighbouring!r}")
        if clip_norm <= 0 or noise_multiplier <= 0:
            raise ValueError(
                f"clip_norm and noise_multiplier must be > 0, got {clip_norm}, {noise_multiplier}"
            )
        if not 0.0 <= uniform_mix < 1.0:
            raise ValueError(f"uniform_mix must be in [0, 1), got {uniform_mix}")
        self.inner = inner
        self.uniform_mix = float(uniform_mix)
        self.mechanism = mechanism
        self.clip_norm = float(clip_norm)
        self.sensitivity = sensitivity(clip_norm, neighbouring)
        self.noise_scale = float(noise_multiplier) * self.sensitivity  # Gaussian std or Laplace b
        self.arrays = frozenset(arrays)
        self.rng = rng
        self.accountant: PrivacyAccountant = (
            GaussianAccountant(noise_multiplier)
            if mechanism == "gaussian"
            else LaplaceAccountant(self.sensitivity, self.noise_scale)
        )
        self.releases_by_kind: Counter[str] = Counter()

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        return self.inner.exchange(round, [self.privatise(m) for m in outgoing])

    def privatise(self, message: Message) -> Message:
        """The message with each named array clipped, noised and (for distributions) projected."""
        payload = {}
        releases = 0
        for name, value in message.payload.items():
            if name not in self.arrays:
                payload[name] = value
                continue
            if value.dtype.kind != "f":
                raise ValueError(
                    f"DP noise: array {name!r} of kind {message.kind!r} is {value.dtype}, not float"
                )
            payload[name] = self._release(value, message.kind, name)
            releases += 1
        if releases:
            self.accountant.step(message.sender, releases)
            self.releases_by_kind[message.kind] += releases
        return message.with_payload(payload)

    def _release(self, value: np.ndarray, kind: str, name: str) -> np.ndarray:
        if self.mechanism == "gaussian":
            x = clip_to_norm(value, self.clip_norm, 2)
            x = x + self.rng.normal(0.0, self.noise_scale, size=x.shape)
        else:
            x = clip_to_norm(value, self.clip_norm, 1)
            x = x + self.rng.laplace(0.0, self.noise_scale, size=x.shape)
        if kind in DISTRIBUTION_KINDS and name == DISTRIBUTION_ARRAY and x.ndim >= 1 and x.shape[-1] > 0:
            x = (1.0 - self.uniform_mix) * project_onto_simplex(x) + self.uniform_mix / x.shape[-1]
        return x.astype(value.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {
            "accountant": self.accountant.state_dict(),
            "releases_by_kind": dict(self.releases_by_kind),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(state["accountant"])
        self.releases_by_kind = Counter(state["releases_by_kind"])
        self.rng.bit_generator.state = state["rng"]
