"""AS — Anticipation Sharing (``000_…``, Eq. 13–16, Algorithm 1).

Agent i learns its own policy π^{ii} and an *anticipation* π^{ij} of each neighbour's policy, optimised
for i's own advantage and pulled towards j's true policy; j's policy is in turn pulled towards what its
neighbours anticipate of it. Messages per iteration, to each neighbour j: ``policy`` (π^{ii}_old on the
batch states) and ``anticipation`` (π^{ij}_old on the batch states). The loss is
``confide.core.dual_clipped.dual_clipped_loss``; AS's ξ_{N_i} divides by i's own old anticipation
π^{ij}_old (Eq. 13 as printed) unless ``denominator="peer_old"`` (decision 8).
"""

from __future__ import annotations

import torch

from confide.core.dual_clipped import DistributionSharing, DualClippedConfig
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings

MESSAGE_KINDS = ("policy", "anticipation")


def anticipation_sharing(
    n_agents: int,
    state_dim: int,
    n_actions: int,
    ppo: PpoSettings,
    config: DualClippedConfig,
    sizes: NetworkSizes,
    generator: torch.Generator,
) -> DistributionSharing:
    """An AS learner for ``n_agents`` agents (defaults: AS Tables 1–2, ρ = 0.1 for C. Predation)."""
    return DistributionSharing(
        "as", "anticipation", n_agents, state_dim, n_actions, ppo, config, sizes, generator
    )
