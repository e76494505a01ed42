"""CL — centralised learning (the baseline of ``001_…`` Sec. 5.2: "a centralised value function is
learned based on the sum of individual rewards, while each agent learns an individual policy").

Per update, two exchange rounds through the channel (``confide.core.central_critic``):

1. up: every agent sends its rewards on the batch to the central unit (kind ``reward``, ``[M]`` float32);
2. down: the central unit computes GAE(γ, λ) advantages Â_c of the total reward Σ_i r_i with its critic
   V_c and sends them to every agent (kind ``advantage``, ``[M]`` float32).

Each agent then runs IPPO's clipped surrogate on its own policy with Â_c (centred per agent when
``center_advantages``); the central critic takes K regression steps on the λ-returns of the total reward.
Agents have no critics of their own. When the central unit lacks any agent's rewards it sends nothing;
an agent without advantages skips its actor update (decision 9's gap protocol).
"""

from __future__ import annotations

import torch

from confide.channels import Message
from confide.core.central_critic import (
    ADVANTAGE,
    REWARD,
    CentralCritic,
    gather_team_rewards,
    gather_vectors,
    reward_messages,
)
from confide.core.comms import Comms, Neighbourhood
from confide.core.ippo import clipped_ppo_update
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings, minibatch_indices
from confide.core.rollout import Rollout

MESSAGE_KINDS: tuple[str, ...] = (REWARD, ADVANTAGE)


class CentralizedLearning(StackedLearner):
    """N actors without critics, and one central critic of the total reward that sends advantages."""

    message_kinds = MESSAGE_KINDS

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
    ) -> None:
        super().__init__("cl", n_agents, state_dim, n_actions, 1, ppo, sizes, generator, critics=False)
        self.central = CentralCritic(state_dim, sizes, ppo.critic_lr, ppo.max_grad_norm, generator)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        n, m = self.population.n_agents, rollout.n_samples
        central = n
        inbox = comms.exchange(reward_messages(rollout, central, comms.round))
        team = gather_team_rewards(inbox, comms, n, m)
        down: list[Message] = []
        critic_loss = float("nan")
        if team is not None:
            adv_c, targets = self.central.advantages_and_targets(
                rollout, team, self.ppo.gamma, self.ppo.gae_lambda
            )
            payload = adv_c.numpy().astype("float32")
            down = [Message(central, i, ADVANTAGE, comms.round, {"advantages": payload}) for i in range(n)]
        inbox = comms.exchange(down)
        received = gather_vectors(
            inbox, comms, ADVANTAGE, "advantages", range(central, central + 1), range(n), m
        )
        stats: dict[str, float] = {"cl/agents_updated": float(len(received))}
        if team is not None:
            states = rollout.flat_states()
            for _ in range(self.ppo.iterations):
                for idx in minibatch_indices(m, self.ppo.minibatches, self.generator):
                    critic_loss = self.central.step(states[idx], targets[idx])
            stats["loss/critic"] = critic_loss
        if received:
            adv = torch.zeros(m, n)
            for i in range(n):
                if (central, i) in received:
                    adv[:, i] = torch.from_numpy(received[(central, i)])
            if self.ppo.center_advantages:
                adv = adv - adv.mean(dim=0, keepdim=True)
            mask = torch.tensor([(central, i) in received for i in range(n)])
            stats.update(self._actor_update(rollout, adv, mask))
        return stats

    def _actor_update(self, rollout: Rollout, adv: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """IPPO's clipped update with the central advantages; agents outside ``mask`` stay put.

        The actors are one stacked Adam, so a skipped agent's parameters are restored after the step;
        its Adam moments see a zero gradient (they decay), the only trace the skip leaves.
        """
        if bool(mask.all()):
            return clipped_ppo_update(self, rollout, (adv, None))
        before = [p.detach().clone() for p in self.population.actor_parameters()]
        stats = clipped_ppo_update(self, rollout, (adv, None))
        with torch.no_grad():  # an agent without advantages skips its update (gap protocol)
            for p, old in zip(self.population.actor_parameters(), before, strict=True):
                rows = p.view(len(mask), -1)
                rows[~mask] = old.view(len(mask), -1)[~mask]
        return stats

    def state_dict(self) -> dict:
        return {**super().state_dict(), "central": self.central.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.central.load_state_dict(state["central"])
