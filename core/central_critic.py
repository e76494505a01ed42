"""The centralised learning unit that CL and centralised joint-action PPO share: it receives every
agent's rewards over the channel, learns one critic V_c(s) of the total reward Σ_i r_i, and computes
GAE advantages of that total.

The unit is a node of the network with its own address, ``CENTRAL = n_agents`` (agents are 0…N−1), so
what crosses to and from it is metered and tapped like every other message:

* up, kind ``reward``: agent i → central, payload ``rewards`` float32 ``[M]``, its reward at each sample
  of the batch (sample m = t·B + b);
* down (CL only), kind ``advantage``: central → agent i, payload ``advantages`` float32 ``[M]``.

The central unit refuses to learn from a partial picture: if any agent's rewards are missing or
rejected, the total reward is unknown, so it sends no advantages and takes no critic step this update
(and the receivers skip their actor update — the gap protocol of decision 9).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from confide.channels import Inbox, Message
from confide.core.comms import Comms
from confide.core.gae import gae
from confide.core.networks import StackedMLP, per_agent_grad_clip_
from confide.core.population import NetworkSizes
from confide.core.rollout import Rollout

REWARD = "reward"
ADVANTAGE = "advantage"


def reward_messages(rollout: Rollout, central: int, round: int) -> list[Message]:
    """Each agent's rewards on the batch, addressed to the central unit."""
    rewards = rollout.rewards.reshape(-1, rollout.rewards.shape[-1]).numpy()  # [M, N]
    return [
        Message(i, central, REWARD, round, {"rewards": np.ascontiguousarray(rewards[:, i], dtype=np.float32)})
        for i in range(rewards.shape[1])
    ]


def check_vector(message: Message, key: str, n_samples: int) -> str | None:
    """Why a ``[M]`` float vector message is invalid, or None."""
    if set(message.payload) != {key}:
        return "bad_keys"
    x = message.payload[key]
    if x.shape != (n_samples,) or x.dtype.kind != "f":
        return "bad_shape"
    if not np.isfinite(x).all():
        return "non_finite"
    return None


def gather_vectors(
    inbox: Inbox, comms: Comms, kind: str, key: str, senders: range, receivers: range, n_samples: int
) -> dict[tuple[int, int], np.ndarray]:
    """Accepted ``[M]`` vectors of one kind keyed by (sender, receiver); the rest rejected and counted."""
    out: dict[tuple[int, int], np.ndarray] = {}
    for message in inbox.messages():
        if message.kind != kind:
            continue
        link = (message.sender, message.receiver)
        if message.sender not in senders or message.receiver not in receivers:
            reason = "bad_address"
        elif link in out:
            reason = "duplicate"
        else:
            reason = check_vector(message, key, n_samples)
        if reason is not None:
            comms.reject(f"{kind}:{reason}")
            continue
        out[link] = message.payload[key]
    return out


def gather_team_rewards(inbox: Inbox, comms: Comms, n_agents: int, n_samples: int) -> Tensor | None:
    """The total reward ``[M]`` Σ_i r_i if every agent's rewards arrived intact, else None."""
    central = n_agents
    got = gather_vectors(
        inbox, comms, REWARD, "rewards", range(n_agents), range(central, central + 1), n_samples
    )
    if len(got) != n_agents:
        return None
    total = np.sum([got[(i, central)].astype(np.float64) for i in range(n_agents)], axis=0)
    return torch.from_numpy(total).float()


class CentralCritic:
    """One critic V_c(s) of the total reward, with its own Adam and gradient clipping."""

    def __init__(
        self,
        state_dim: int,
        sizes: NetworkSizes,
        lr: float,
        max_grad_norm: float,
        generator: torch.Generator,
    ) -> None:
        critic_sizes = (state_dim, *sizes.critic_hidden, 1)
        self.network = StackedMLP(
            1, critic_sizes, generator, sizes.activation, one_hot_input=sizes.one_hot_states
        )
        self.optimiser = torch.optim.Adam(self.network.group_parameters(), lr=lr)
        self.max_grad_norm = max_grad_norm

    def values(self, states: Tensor) -> Tensor:
        """``[M]`` V_c(s)."""
        return self.network(states)[0, :, 0]

    @torch.no_grad()
    def advantages_and_targets(
        self, rollout: Rollout, team_rewards: Tensor, gamma: float, lam: float
    ) -> tuple[Tensor, Tensor]:
        """GAE advantages of the total reward and λ-return targets, both ``[M]``."""
        T, B = rollout.horizon, rollout.batch_size
        v = self.values(rollout.flat_states()).reshape(T, B)
        v_next = self.values(rollout.next_states.reshape(T * B, -1)).reshape(T, B)
        adv = gae(team_rewards.reshape(T, B), v, v_next, rollout.ends, gamma, lam)
        return adv.reshape(-1), (adv + v).reshape(-1)

    def step(self, states: Tensor, targets: Tensor) -> float:
        """One regression step on λ-return targets; returns the loss."""
        loss = ((self.values(states) - targets) ** 2).mean()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        per_agent_grad_clip_(self.network.group_parameters(), 1, self.max_grad_norm)
        self.optimiser.step()
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"network": self.network.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimiser.load_state_dict(state["optimiser"])
