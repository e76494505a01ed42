"""IQL — independent Q-learning (Tan 1993; Tampuu et al. 2015; DPO's reference baseline): every agent
runs DQN (Mnih et al. 2015) on its own reward and its own action, treating the others as part of the
environment. Sends nothing.

Per agent i: Q_i(s, ·) over its own actions, a target network Q̄_i refreshed by a hard copy every
``target_every`` gradient steps, ε-greedy acting with ε decayed linearly from ``eps_start`` to ``eps_end``
over the first ``eps_fraction`` of the run's updates, and the Huber loss on

    y = r_i + γ · (1 − end) · max_a' Q̄_i(s', a').

Plain DQN, not double DQN (IQL as DPO cites it). Replay: each update adds the rollout's M transitions to
a ring buffer of ``buffer_size``; then ``ceil(replay_ratio · M / batch_size)`` gradient steps on uniform
minibatches, so every transition is replayed about ``replay_ratio`` times while it is fresh. The buffer
stores each transition once for all agents (the states are public); agent i reads only its own action
and reward columns, which is the information boundary of independent learning.

Acting uses the PPO-family sampling path: ε-greedy is the categorical distribution
(1 − ε)·onehot(argmax Q) + ε/A, whose logits ``act_logits`` returns.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from confide.core.comms import Comms, Neighbourhood
from confide.core.learner import StackedLearner
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings
from confide.core.rollout import Rollout

MESSAGE_KINDS: tuple[str, ...] = ()


@dataclass(frozen=True)
class IqlSettings:
    """DQN hyperparameters (DPO does not list IQL's; these are common DQN defaults, decision in docs)."""

    lr: float = 5e-4
    buffer_size: int = 50_000
    batch_size: int = 128
    replay_ratio: float = 4.0
    target_every: int = 100
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_fraction: float = 0.5
    max_grad_norm: float = 10.0


class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', end) with every agent's action and reward."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self.cursor = 0
        self.data: dict[str, Tensor] = {}

    def add(self, rollout: Rollout) -> None:
        m = rollout.n_samples
        batch = {
            "states": rollout.flat_states(),
            "next_states": rollout.next_states.reshape(m, -1),
            "actions": rollout.flat_actions(),
            "rewards": rollout.rewards.reshape(m, -1),
            "ends": rollout.ends.reshape(m),
        }
        if not self.data:
            self.data = {
                k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in batch.items()
            }
        pos = (self.cursor + torch.arange(m)) % self.capacity
        for key, value in batch.items():
            self.data[key][pos] = value
        self.cursor = (self.cursor + m) % self.capacity
        self.size = min(self.size + m, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, Tensor]:
        idx = torch.randint(self.size, (batch_size,), generator=generator)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict:
        data = (
            {k: v[: self.size].clone() for k, v in self.data.items()}
            if self.size < self.capacity
            else self.data
        )
        return {"size": self.size, "cursor": self.cursor, "data": data}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.cursor = state["size"], state["cursor"]
        self.data = {}
        for key, value in state["data"].items():
            full = torch.zeros((self.capacity, *value.shape[1:]), dtype=value.dtype)
            full[: value.shape[0]] = value
            self.data[key] = full


class IndependentQLearning(StackedLearner):
    """N DQN learners, stacked; the policy bank holds the Q-networks."""

    message_kinds = MESSAGE_KINDS

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        ppo: PpoSettings,
        sizes: NetworkSizes,
        generator: torch.Generator,
        settings: IqlSettings,
        total_updates: int,
    ) -> None:
        ppo = PpoSettings(gamma=ppo.gamma, actor_lr=settings.lr, max_grad_norm=settings.max_grad_norm)
        super().__init__("iql", n_agents, state_dim, n_actions, 1, ppo, sizes, generator, critics=False)
        self.settings = settings
        self.total_updates = max(1, total_updates)
        self.target = copy.deepcopy(self.population.policy).requires_grad_(False)
        self.replay = ReplayBuffer(settings.buffer_size)
        self.updates_done = 0
        self.gradient_steps = 0

    def epsilon(self) -> float:
        s = self.settings
        progress = min(1.0, self.updates_done / max(1.0, s.eps_fraction * self.total_updates))
        return s.eps_start + (s.eps_end - s.eps_start) * progress

    @torch.no_grad()
    def act_logits(self, states: Tensor) -> Tensor:
        """``[N, B, A]`` logits of the ε-greedy distribution of every agent."""
        q = self.population.own_logits(states)
        eps, a = self.epsilon(), q.shape[-1]
        greedy = torch.nn.functional.one_hot(q.argmax(dim=-1), a).to(q.dtype)
        return ((1 - eps) * greedy + eps / a).log()

    def update(self, rollout: Rollout, comms: Comms, neighbourhood: Neighbourhood) -> dict[str, float]:
        s = self.settings
        self.replay.add(rollout)
        steps = math.ceil(s.replay_ratio * rollout.n_samples / s.batch_size)
        losses = torch.zeros(self.population.n_agents)
        for _ in range(steps):
            batch = self.replay.sample(s.batch_size, self.generator)
            q = self.population.own_logits(batch["states"])  # [N, b, A]
            q_taken = q.gather(-1, batch["actions"].T.unsqueeze(-1)).squeeze(-1)  # [N, b]
            with torch.no_grad():
                q_next = self.target(batch["next_states"]).max(dim=-1).values  # [N, b]
                cont = (~batch["ends"]).to(q_next.dtype)
                y = batch["rewards"].T + self.ppo.gamma * cont * q_next
            per_agent = torch.nn.functional.smooth_l1_loss(q_taken, y, reduction="none").mean(dim=1)
            self.optimiser.step_actor(per_agent.sum())
            losses = per_agent.detach()
            self.gradient_steps += 1
            if self.gradient_steps % s.target_every == 0:
                self.target.load_state_dict(self.population.policy.state_dict())
        self.updates_done += 1
        return {"loss/td": float(losses.mean()), "iql/epsilon": self.epsilon()}

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "target": self.target.state_dict(),
            "replay": self.replay.state_dict(),
            "updates_done": self.updates_done,
            "gradient_steps": self.gradient_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.target.load_state_dict(state["target"])
        self.replay.load_state_dict(state["replay"])
        self.updates_done = state["updates_done"]
        self.gradient_steps = state["gradient_steps"]
