"""Centralised joint-action PPO (``000_…`` Sec. 5.3, Fig. 6: "a single policy network to output
probabilities of the joint action distribution and a critic network to evaluate the total return using
the total reward").

One controller owns one policy π(a_1, …, a_N | s) over the joint action space (A^N outputs) and one
critic of the total reward (``CentralCritic``). It acts for everyone: a joint action is sampled and each
agent executes its component (agent 0 is the most significant digit). The rewards reach it through the
channel exactly as in CL (kind ``reward``, agent → central); the joint action's per-step broadcast happens
in the acting loop, outside the learning channel, and is not metered (say so when comparing bytes).

The joint space grows as A^N, so the controller refuses more than ``MAX_JOINT_ACTIONS`` joint actions
(the paper ran N = 2 only). In the rollout each agent's ``log_probs`` column holds log π(a|s) / N, so
their sum is the joint log-probability used for the PPO ratio.
"""

from __future__ import annotations

import torch
from torch import Tensor

from confide.core.central_critic import REWARD, CentralCritic, gather_team_rewards, reward_messages
from confide.core.comms import Comms, Neighbourhood
from confide.core.networks import StackedMLP, per_agent_grad_clip_
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings, categorical_entropy, clipped_surrogate, minibatch_indices
from confide.core.rollout import Rollout, sample_categorical

MESSAGE_KINDS: tuple[str, ...] = (REWARD,)
MAX_JOINT_ACTIONS = 64


class JointActionTooLarge(ValueError):
    """The joint action space A^N exceeds what one softmax over joint actions should hold."""


def joint_space_size(n_agents: int, n_actions: int) -> int:
    size = n_actions**n_agents
    if size > MAX_JOINT_ACTIONS:
        raise JointActionTooLarge(
            f"centralised joint-action PPO needs {n_actions}^{n_agents} = {size} joint actions; "
            f"at most {MAX_JOINT_ACTIONS} are supported (the AS paper uses N = 2)"
        )
    return size


class CentralizedPPO:
    """One clipped-PPO learner over joint actions with a critic of the total reward."""

    message_kinds = MESSAGE_KINDS
    population = None  # no per-agent networks: nothing for the per-agent diagnostics to read

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
    ) -> None:
        self.name = "centralized_ppo"
        self.n_agents, self.n_actions = n_agents, n_actions
        self.n_joint = joint_space_size(n_agents, n_actions)
        self.ppo = ppo
        self.generator = generator
        self.policy = StackedMLP(
            1,
            (state_dim, *sizes.actor_hidden, self.n_joint),
            generator,
            sizes.activation,
            one_hot_input=sizes.one_hot_states,
        )
        self.optimiser = torch.optim.Adam(self.policy.group_parameters(), lr=ppo.actor_lr)
        self.central = CentralCritic(state_dim, sizes, ppo.critic_lr, ppo.max_grad_norm, generator)
        radix = n_actions ** torch.arange(n_agents - 1, -1, -1)
        self.radix = radix  # joint index = Σ_i a_i · A^(N−1−i)

    def joint_logits(self, states: Tensor) -> Tensor:
        """``[M, A^N]``."""
        return self.policy(states)[0]

    def decode(self, joint: Tensor) -> Tensor:
        """Joint indices ``[...]`` → per-agent actions ``[..., N]``."""
        return (joint.unsqueeze(-1) // self.radix) % self.n_actions

    def encode(self, actions: Tensor) -> Tensor:
        """Per-agent actions ``[..., N]`` → joint indices ``[...]``."""
        return (actions * self.radix).sum(dim=-1)

    def sample_actions(self, states: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Sample joint actions; returns actions ``[N, B]`` and log π(a|s)/N per agent ``[N, B]``."""
        joint, logp = sample_categorical(self.joint_logits(states), generator)
        actions = self.decode(joint).T
        return actions, (logp / self.n_agents).expand(self.n_agents, -1)

    def act_logits(self, states: Tensor) -> Tensor:
        """``[N, B, A]`` log of each agent's marginal action probabilities (for diagnostics only)."""
        probs = torch.softmax(self.joint_logits(states), dim=-1)  # [B, A^N]
        b = states.shape[0]
        table = probs.view(b, *([self.n_actions] * self.n_agents))
        marginals = []
        for i in range(self.n_agents):
            other = tuple(d + 1 for d in range(self.n_agents) if d != i)
            marginals.append(table.sum(dim=other) if other else table)
        return torch.stack(marginals).clamp_min(1e-30).log()

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        m = rollout.n_samples
        inbox = comms.exchange(reward_messages(rollout, self.n_agents, comms.round))
        team = gather_team_rewards(inbox, comms, self.n_agents, m)
        if team is None:
            return {"central/skipped": 1.0}
        adv, targets = self.central.advantages_and_targets(rollout, team, self.ppo.gamma, self.ppo.gae_lambda)
        if self.ppo.center_advantages:
            adv = adv - adv.mean()
        states = rollout.flat_states()
        joint = self.encode(rollout.flat_actions())
        old_logp = rollout.log_probs.reshape(m, -1).sum(dim=-1)
        for _ in range(self.ppo.iterations):
            for idx in minibatch_indices(m, self.ppo.minibatches, self.generator):
                logp = torch.log_softmax(self.joint_logits(states[idx]), dim=-1)
                logp_a = logp.gather(-1, joint[idx].unsqueeze(-1)).squeeze(-1)
                surrogate = clipped_surrogate((logp_a - old_logp[idx]).exp(), adv[idx], self.ppo.clip_eps)
                entropy = categorical_entropy(logp)
                loss = -(surrogate + self.ppo.entropy_coef * entropy).mean()
                self.optimiser.zero_grad(set_to_none=True)
                loss.backward()
                per_agent_grad_clip_(self.policy.group_parameters(), 1, self.ppo.max_grad_norm)
                self.optimiser.step()
                critic_loss = self.central.step(states[idx], targets[idx])
        return {"loss/surrogate": float(surrogate.detach().mean()), "loss/critic": critic_loss}

    def state_dict(self) -> dict:
        return {
            "policy": self.policy.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "central": self.central.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.central.load_state_dict(state["central"])
