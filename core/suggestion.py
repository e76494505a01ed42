"""SS — Suggestion Sharing (``001_…``, Eq. 13–16, Algorithm 1).

Same shape as AS, read differently: π^{ij} is agent i's *suggestion* to j, and ξ_{N_i} divides by the
peer's true old policy π^{jj}_old, received in j's ``policy`` message (SS Eq. 13; decision 8) — the
correct importance weight, since a_j was drawn from π^{jj}. Messages per iteration, to each neighbour j:
``policy`` (π^{ii}_old) and ``suggestion`` (π^{ij}_old), on the batch states.
"""

from __future__ import annotations

import torch

from confide.core.dual_clipped import DistributionSharing, DualClippedConfig
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings

MESSAGE_KINDS = ("policy", "suggestion")


def suggestion_sharing(
    n_agents: int,
    state_dim: int,
    n_actions: int,
    ppo: PpoSettings,
    config: DualClippedConfig,
    sizes: NetworkSizes,
    generator: torch.Generator,
) -> DistributionSharing:
    """An SS learner for ``n_agents`` agents (defaults: SS Tables 1–2, denominator π^{jj}_old)."""
    return DistributionSharing(
        "ss", "suggestion", n_agents, state_dim, n_actions, ppo, config, sizes, generator
    )
