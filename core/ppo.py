"""PPO machinery every on-policy algorithm shares: advantages and critic targets from each agent's
own critic on its own reward, the clipped surrogate, and the critic regression step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from confide.core.gae import gae
from confide.core.population import Population, PopulationOptimiser
from confide.core.rollout import Rollout


@dataclass(frozen=True)
class PpoSettings:
    """Hyperparameters common to the PPO family (AS/SS Table 1; DPO App. B)."""

    gamma: float = 0.99
    gae_lambda: float = 0.98
    clip_eps: float = 0.2
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    iterations: int = 3  # K of Algorithm 1 / PPO epochs per update
    minibatches: int = 1
    max_grad_norm: float = 0.5  # per agent; confide's choice (the papers are silent)
    entropy_coef: float = 0.0  # confide's choice: the papers use no entropy bonus
    center_advantages: bool = False  # subtract each agent's batch mean from Â (off: the papers are silent)
    # (Â − mean) / (std + 1e-5) per agent over the update batch: MAPPO's train(), which DPO's and IPPO's
    # code inherits (DPO App. B). On for the DPO family and IPPO on DPO's environments (decision 12).
    standardise_advantages: bool = False


@torch.no_grad()
def advantages_and_targets(
    population: Population, rollout: Rollout, ppo: PpoSettings
) -> tuple[Tensor, Tensor]:
    """Each agent's GAE advantages Â_i and λ-return targets, both ``[M, N]`` (M = T·B).

    Agent i's critic V_i sees only agent i's reward (AS/SS Eq. 17; decision 11 λ-returns). With
    ``ppo.center_advantages`` each agent's advantages have their batch mean removed (targets are
    unchanged): AS's printed ξ_{N_i} denominator makes the anticipations' gradient depend on a constant
    shift of Â. With ``ppo.standardise_advantages`` they are also divided by their batch std (+ 1e-5),
    per agent: an agent normalises only its own advantages, as each of MAPPO's per-agent trainers does.
    """
    gamma, lam = ppo.gamma, ppo.gae_lambda
    T, B = rollout.horizon, rollout.batch_size
    v = population.values(rollout.flat_states()).T.reshape(T, B, -1)
    v_next = population.values(rollout.next_states.reshape(T * B, -1)).T.reshape(T, B, -1)
    adv = gae(rollout.rewards, v, v_next, rollout.ends.unsqueeze(-1), gamma, lam)
    targets = adv + v
    n = rollout.rewards.shape[-1]
    adv, targets = adv.reshape(T * B, n), targets.reshape(T * B, n)
    if ppo.center_advantages or ppo.standardise_advantages:
        adv = adv - adv.mean(dim=0, keepdim=True)
    if ppo.standardise_advantages:
        adv = adv / (adv.std(dim=0, unbiased=False, keepdim=True) + 1e-5)
    return adv, targets


def critic_step(
    population: Population, optimiser: PopulationOptimiser, states: Tensor, targets: Tensor
) -> Tensor:
    """One regression step of every critic on its own targets ``[M, N]``; returns per-agent losses ``[N]``."""
    values = population.values(states)  # [N, M]
    losses = ((values - targets.T) ** 2).mean(dim=1)
    optimiser.step_critic(losses.sum())
    return losses.detach()


def clipped_surrogate(ratio: Tensor, adv: Tensor, clip_eps: float) -> Tensor:
    """PPO's min(ξ Â, clip(ξ, 1−ε, 1+ε) Â), elementwise."""
    return torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)


def categorical_entropy(logp: Tensor) -> Tensor:
    """The entropy (nats) of categorical distributions given as log-probabilities over the last axis."""
    return -(logp.exp() * logp).sum(-1)


def minibatch_indices(n_samples: int, minibatches: int, generator: torch.Generator) -> list[Tensor]:
    """A random split of ``range(n_samples)`` into ``minibatches`` parts (one part: all, in order)."""
    if minibatches <= 1:
        return [torch.arange(n_samples)]
    perm = torch.randperm(n_samples, generator=generator)
    return list(perm.chunk(minibatches))
