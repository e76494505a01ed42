"""DPO — the fully decentralised surrogate (``002_…`` Eq. 20–21), its ablations, and IPPO-KL.

Agent i maximises, against its rollout policy π^i_old (no ratio clipping),

    c · E[ π^i(a_i|s)/π^i_old(a_i|s) · Â_i ] − β₁^i E[ √KL(π^i_old(·|s) ‖ π^i(·|s)) ] − β₂^i E[ KL(…) ]

with c = 1/N (Eq. 20) or 1 (the public code), per-sample exact categorical KL and the mean of √KL over
samples (not √ of the mean). After the update, D_KL^avg is measured and (Eq. 21; δ = 1.5, ω = 2 by
default, ``algo.delta``/``algo.omega`` in a run config, DPO Fig. 9)
β ← β·ω if D > d_target·δ, β ← β/ω if D < d_target/δ, clamped to [1e-3, 1e3] (decision 6).
``ppo.entropy_coef`` > 0 adds MAPPO's entropy bonus to the loss (the papers' tables do not: off).

Variants (``DpoConfig.statistics``):
- ``"own"`` (the paper): each agent adapts both β from its own D_KL^avg. Sends nothing.
- ``"shared"`` (the public code): every agent sends its mean KL and mean √KL — two float32 scalars,
  message kind ``kl_stats`` — to every other agent each update; each averages all N values and adapts
  β₂ on the mean KL against d_target and β₁ on the mean √KL against √d_target.
Ablations: ``sqrt_kl=False`` (DPO w/o √KL), ``kl=False`` (DPO w/o KL). IPPO-KL (PPO's adaptive-KL
version, DPO App. C) is ``sqrt_kl=False, one_over_n=False`` with β₂ starting at 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from confide.channels import Message
from confide.core.comms import Comms, Neighbourhood
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import (
    PpoSettings,
    advantages_and_targets,
    categorical_entropy,
    critic_step,
    minibatch_indices,
)
from confide.core.rollout import Rollout

KL_STATS = "kl_stats"
BETA_MIN, BETA_MAX = 1e-3, 1e3


@dataclass(frozen=True)
class DpoConfig:
    d_target: float = 0.01
    delta: float = 1.5
    omega: float = 2.0
    beta1_init: float = 0.01
    beta2_init: float = 0.01
    sqrt_kl: bool = True
    kl: bool = True
    one_over_n: bool = True
    statistics: Literal["own", "shared"] = "own"


def categorical_kl(old_logp: Tensor, logp: Tensor) -> Tensor:
    """Exact KL(π_old ‖ π) per sample over the last axis."""
    return (old_logp.exp() * (old_logp - logp)).sum(-1)


def adapt_beta(beta: Tensor, measured: Tensor, target: float, delta: float, omega: float) -> Tensor:
    """Eq. 21 for one coefficient (vectorised over agents), clamped to [1e-3, 1e3]."""
    up = measured > target * delta
    down = measured < target / delta
    beta = torch.where(up, beta * omega, torch.where(down, beta / omega, beta))
    return beta.clamp(BETA_MIN, BETA_MAX)


def _check_kl_stats(message: Message, n: int) -> str | None:
    """Why a received ``kl_stats`` message is invalid, or None."""
    if message.kind != KL_STATS:
        return "bad_kind"
    if not (0 <= message.sender < n and 0 <= message.receiver < n) or message.sender == message.receiver:
        return "bad_address"
    if set(message.payload) != {"kl"}:
        return "bad_keys"
    value = message.payload["kl"]
    if value.shape != (2,) or value.dtype.kind != "f":
        return "bad_shape"
    if not np.isfinite(value).all():
        return "non_finite"
    if (value < 0).any():
        return "negative"
    return None


class DecentralizedPolicyOptimization(StackedLearner):
    """N DPO learners, stacked."""

    def __init__(
        self,
        name: str,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        config: DpoConfig,
        sizes: NetworkSizes,
        generator: torch.Generator,
    ) -> None:
        self.config = config
        self.message_kinds: tuple[str, ...] = (KL_STATS,) if config.statistics == "shared" else ()
        super().__init__(name, n_agents, state_dim, n_actions, 1, ppo, sizes, generator)
        self.beta1 = torch.full((n_agents,), config.beta1_init if config.sqrt_kl else 0.0)
        self.beta2 = torch.full((n_agents,), config.beta2_init if config.kl else 0.0)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        pop, cfg, n = self.population, self.config, self.population.n_agents
        states, actions = rollout.flat_states(), rollout.flat_actions()
        adv, targets = advantages_and_targets(pop, rollout, self.ppo)
        with torch.no_grad():
            old_logp = torch.log_softmax(pop.own_logits(states), dim=-1)  # [N, M, A] rollout policy
        old_logp_a = old_logp.gather(-1, actions.T.unsqueeze(-1)).squeeze(-1)
        coef = 1.0 / n if cfg.one_over_n else 1.0
        for _ in range(self.ppo.iterations):
            for idx in minibatch_indices(states.shape[0], self.ppo.minibatches, self.generator):
                logp = torch.log_softmax(pop.own_logits(states[idx]), dim=-1)
                logp_a = logp.gather(-1, actions[idx].T.unsqueeze(-1)).squeeze(-1)
                ratio = (logp_a - old_logp_a[:, idx]).exp()
                kl = categorical_kl(old_logp[:, idx], logp).clamp_min(0.0)
                gain = coef * (ratio * adv[idx].T).mean(dim=1)
                loss = (
                    -gain + self.beta1 * kl.clamp_min(1e-12).sqrt().mean(dim=1) + self.beta2 * kl.mean(dim=1)
                )
                if self.ppo.entropy_coef:  # MAPPO's bonus, which DPO's code inherits (off by default)
                    loss = loss - self.ppo.entropy_coef * categorical_entropy(logp).mean(dim=1)
                self.optimiser.step_actor(loss.sum())
                closs = critic_step(pop, self.optimiser, states[idx], targets[idx])
        with torch.no_grad():
            new_logp = torch.log_softmax(pop.own_logits(states), dim=-1)
            kl = categorical_kl(old_logp, new_logp).clamp_min(0.0)
            kl_mean, sqrt_mean = kl.mean(dim=1), kl.sqrt().mean(dim=1)
            entropy = categorical_entropy(new_logp).mean()
        if cfg.statistics == "shared":
            kl_for_b2, sqrt_for_b1 = self._shared_statistics(kl_mean, sqrt_mean, comms, neighbourhood)
            b1_target = math.sqrt(cfg.d_target)
        else:
            kl_for_b2, sqrt_for_b1, b1_target = kl_mean, kl_mean, cfg.d_target
        if cfg.kl:
            self.beta2 = adapt_beta(self.beta2, kl_for_b2, cfg.d_target, cfg.delta, cfg.omega)
        if cfg.sqrt_kl:
            self.beta1 = adapt_beta(self.beta1, sqrt_for_b1, b1_target, cfg.delta, cfg.omega)
        return {
            "loss/gain": float(gain.detach().mean()),
            "loss/critic": float(closs.mean()),
            "kl/mean": float(kl_mean.mean()),
            "entropy/mean": float(entropy),  # the policies' after the update (nats)
            "beta1/mean": float(self.beta1.mean()),
            "beta2/mean": float(self.beta2.mean()),
        }

    def _shared_statistics(
        self, kl_mean: Tensor, sqrt_mean: Tensor, comms: Comms, neighbourhood: Neighbourhood
    ) -> tuple[Tensor, Tensor]:
        """Send (mean KL, mean √KL) to every other agent; average own and received values per agent."""
        n = kl_mean.shape[0]
        outgoing = [
            Message(
                j, i, KL_STATS, comms.round, {"kl": np.array([kl_mean[j], sqrt_mean[j]], dtype=np.float32)}
            )
            for j in range(n)
            for i in range(n)
            if i != j
        ]
        inbox = comms.exchange(outgoing)
        total = torch.stack([kl_mean, sqrt_mean], dim=1).double().clone()  # own values
        count = torch.ones(n, dtype=torch.float64)
        seen: set[tuple[int, int]] = set()
        for message in inbox.messages():
            reason = _check_kl_stats(message, n)
            if reason is None and (message.sender, message.receiver) in seen:
                reason = "duplicate"
            if reason is not None:
                comms.reject(f"{KL_STATS}:{reason}")
                continue
            seen.add((message.sender, message.receiver))
            total[message.receiver] += torch.from_numpy(message.payload["kl"].astype(np.float64))
            count[message.receiver] += 1
        avg = (total / count.unsqueeze(1)).float()
        return avg[:, 0], avg[:, 1]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "beta1": self.beta1.clone(), "beta2": self.beta2.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.beta1, self.beta2 = state["beta1"], state["beta2"]
