"""IMR — intrinsic moral reward (virtue-kindness, Tennant et al. 2023; the baseline of ``001_…`` Sec. 5.2:
"each agent learns independently using both individual external rewards and IMR … performance is
evaluated based solely on external rewards").

Agent i learns with IPPO on the shaped reward

    r̃_i,t = r_i,t + ξ · 1[a_i,t = c_i(s_t)],

where c_i(s_t) is the environment's declared cooperative act for i in state s_t (``VecEnv.cooperative_action``,
e.g. "approach" in C. Predation) and ξ ≥ 0 the virtue-kindness weight. The critic learns the shaped
return; the trainer's metrics and ``summary.json`` use the external rewards only (the rollout is never
modified). IMR sends nothing. Environments whose cooperation is not tied to an action (matrix team
games, C. Navigation) have no cooperative act and IMR refuses them (the SS paper's own caveat).

Choice of ξ (``hyperparameters.imr_bonus``): the per-step cost of cooperating alone, so that the bonus
exactly offsets the temptation to defect against defectors (Tennant et al.'s ξ plays the same role in
their dilemma games). For C. Predation that is 2N under the ``ss`` payoffs and 4 under ``as``.
"""

from __future__ import annotations

import dataclasses

import torch

from confide.core.comms import Comms, Neighbourhood
from confide.core.ippo import clipped_ppo_update
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings, advantages_and_targets
from confide.core.rollout import Rollout

MESSAGE_KINDS: tuple[str, ...] = ()


def shaped_rewards(rollout: Rollout, bonus: float) -> torch.Tensor:
    """``[T, B, N]`` external rewards plus ξ for every cooperative act taken."""
    if rollout.cooperative is None:
        raise ValueError("IMR needs an environment that declares a cooperative act; this one declares none")
    kind = (rollout.actions == rollout.cooperative.to(rollout.actions.dtype)).to(rollout.rewards.dtype)
    return rollout.rewards + bonus * kind


class IntrinsicMoralReward(StackedLearner):
    """N IPPO learners on external reward plus a virtue-kindness bonus; no messages."""

    message_kinds = MESSAGE_KINDS

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
        bonus: float,
    ) -> None:
        super().__init__("imr", n_agents, state_dim, n_actions, 1, ppo, sizes, generator)
        if bonus < 0:
            raise ValueError(f"IMR bonus must be >= 0, got {bonus}")
        self.bonus = bonus

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        shaped = dataclasses.replace(rollout, rewards=shaped_rewards(rollout, self.bonus))
        advantages = advantages_and_targets(self.population, shaped, self.ppo)
        stats = clipped_ppo_update(self, shaped, advantages)
        intrinsic = (shaped.rewards - rollout.rewards).sum(dim=(0, 2)).mean()
        return {**stats, "imr/intrinsic_return": float(intrinsic)}
