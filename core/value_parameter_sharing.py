"""VPS — value-function parameter sharing (Zhang et al. 2018, "Fully decentralized MARL with networked
agents"; the baseline of ``000_…`` and ``001_…`` Sec. 5.2).

Each agent trains its critic V_i on its *own* reward (λ-return targets, decision 11) and its actor with
clipped PPO on the GAE advantages of that critic on its own reward — exactly IPPO's update. After the
update's iterations it runs one consensus step on the critic parameters with its neighbours
(``confide.core.consensus``): it sends its flattened critic (message kind ``critic_params``, float32, to
each neighbour) and sets its critic to the Metropolis–Hastings weighted mean of its own and the
accepted received critics. The actor of the next update therefore takes its TD errors from the
consensus critic, on its own reward — the order of Zhang et al.'s Algorithm 1 (TD error from the current
critic; actor and critic steps; then consensus).

Per update: one round, one message per directed link, P_critic float32 each. With a per-sample
neighbourhood the graph is the union over the batch (see ``consensus``). In a communication gap nothing
is sent and no consensus happens (decision 9); an agent that accepts nothing is an independent learner.

With ``dp_sgd`` settings (``algo.dp_sgd_clip``) the critic bank, the thing VPS sends, trains by DP-SGD
(``confide.privacy.dp_sgd``); the actors, never sent, train as before. The actor steps then run first
and the critic steps after (each reads only the advantages computed before both, so the order changes
nothing), and with several minibatches the critic draws its own minibatch split.
"""

from __future__ import annotations

import torch

from confide.core.comms import Comms, Neighbourhood
from confide.core.consensus import consensus_round
from confide.core.ippo import clipped_ppo_update
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings, advantages_and_targets, minibatch_indices
from confide.core.rollout import Rollout
from confide.privacy.dp_sgd import DpSgdSettings

CRITIC_PARAMS = "critic_params"
MESSAGE_KINDS: tuple[str, ...] = (CRITIC_PARAMS,)


class ValueParameterSharing(StackedLearner):
    """N IPPO learners whose critics take one consensus step with their neighbours per update."""

    message_kinds = MESSAGE_KINDS

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
        dp_sgd: DpSgdSettings | None = None,
    ) -> None:
        super().__init__("vps", n_agents, state_dim, n_actions, 1, ppo, sizes, generator)
        self.dp_sgd = None
        if dp_sgd is not None:
            from confide.privacy.dp_sgd import DpSgd  # imports Opacus: only when DP-SGD is on

            opt, critic = self.optimiser, self.population.critic
            self.dp_sgd = DpSgd(dp_sgd, critic, opt.critic, n_agents, opt.max_grad_norm, ppo.minibatches)

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        if self.dp_sgd is None:
            stats = clipped_ppo_update(self, rollout)  # own-reward critic and actor steps
        else:
            stats = self._dp_sgd_update(rollout)
        pop = self.population
        stats.update(
            consensus_round(pop.critic_parameters(), pop.n_agents, CRITIC_PARAMS, comms, neighbourhood)
        )
        return stats

    def _dp_sgd_update(self, rollout: Rollout) -> dict[str, float]:
        """IPPO's actor steps, then the critic's λ-return regression by DP-SGD."""
        ppo, pop, dp = self.ppo, self.population, self.dp_sgd
        assert dp is not None
        adv, targets = advantages_and_targets(pop, rollout, ppo)
        stats = clipped_ppo_update(self, rollout, (adv, None))  # actors only
        states = rollout.flat_states()
        for _ in range(ppo.iterations):
            for idx in minibatch_indices(states.shape[0], ppo.minibatches, self.generator):
                values = dp.forward(states[idx]).squeeze(-1)  # [N, m]
                losses = ((values - targets[idx].T) ** 2).mean(dim=1)
                dp.step(losses.sum())
        stats["loss/critic"] = float(losses.detach().mean())
        return stats
