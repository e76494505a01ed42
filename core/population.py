"""Every agent's networks, stacked so that agent ``i`` owns slice ``i`` of each bank.

An agent has ``heads`` policy heads over the shared global state and one critic. With one head
(IPPO, DPO) the head is the agent's own policy π^{ii}. With ``heads = N`` (AS, SS) head ``j`` of
agent ``i`` is π^{ij}: its own policy at ``j = i`` and its anticipation of (AS) or suggestion for (SS)
agent ``j`` otherwise. Group ``g = i * heads + h`` of the policy bank is agent ``i``'s head ``h``.

The population is a container, not an agent: each algorithm builds agent ``i``'s loss only from slice
``i`` of these banks plus what agent ``i``'s inbox delivered, and the per-agent structure of the
optimiser and gradient clipping keeps the slices independent (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from confide.core.networks import Activation, SharedTrunkHeads, StackedMLP, per_agent_grad_clip_


@dataclass(frozen=True)
class NetworkSizes:
    """Hidden widths of actors and critics (AS/SS Table 2 for C. Predation: (128, 64)).

    ``shared_trunk``: with several heads per agent, the heads share the agent's hidden layers and
    differ only in their output layer (a different model from the papers' separate MLPs; see the
    module docstring). No effect with one head.
    ``one_hot_states``: the environment's state is one-hot (the stochastic game), so every network's
    first layer is a row lookup (``StackedMLP``'s ``one_hot_input``): the same model, fewer FLOPs.
    """

    actor_hidden: tuple[int, ...] = (128, 64)
    critic_hidden: tuple[int, ...] = (128, 64)
    activation: Activation = "relu"
    shared_trunk: bool = False
    one_hot_states: bool = False

    def __post_init__(self) -> None:
        if self.shared_trunk and not self.actor_hidden:
            raise ValueError("shared_trunk needs at least one actor hidden layer to share")


class Population(nn.Module):
    """Stacked actors and critics of ``n_agents`` agents."""

    def __init__(
        self,
        n_agents: int,
        state_dim: int,
        n_actions: int,
        heads: int,
        sizes: NetworkSizes,
        generator: torch.Generator,
        critics: bool = True,
    ) -> None:
        super().__init__()
        if heads not in (1, n_agents):
            raise ValueError(f"heads must be 1 or n_agents={n_agents}, got {heads}")
        self.n_agents = n_agents
        self.heads = heads
        self.n_actions = n_actions
        actor_sizes = (state_dim, *sizes.actor_hidden, n_actions)
        self.policy: StackedMLP | SharedTrunkHeads
        one_hot = sizes.one_hot_states
        if sizes.shared_trunk and heads > 1:
            self.policy = SharedTrunkHeads(
                n_agents, heads, actor_sizes, generator, sizes.activation, one_hot_input=one_hot
            )
        else:
            self.policy = StackedMLP(
                n_agents * heads, actor_sizes, generator, sizes.activation, one_hot_input=one_hot
            )
        critic_sizes = (state_dim, *sizes.critic_hidden, 1)
        self.critic = (
            StackedMLP(n_agents, critic_sizes, generator, sizes.activation, one_hot_input=one_hot)
            if critics
            else None
        )  # no per-agent critics when a central unit evaluates (CL)
        own = torch.arange(n_agents) * heads + (torch.arange(n_agents) if heads > 1 else 0)
        self.register_buffer("own_index", own, persistent=False)
        self._own = slice(None) if heads == 1 else slice(None, None, heads + 1)  # own_index as a view

    def own_logits(self, states: Tensor) -> Tensor:
        """``[N, M, A]`` logits of each agent's own policy π^{ii} on states ``[M, S]``."""
        return self.policy(states) if self.heads == 1 else self.policy(states, self._own)

    def all_logits(self, states: Tensor) -> Tensor:
        """``[N, H, M, A]`` logits of every head of every agent."""
        out = self.policy(states)
        return out.view(self.n_agents, self.heads, *out.shape[1:])

    def values(self, states: Tensor) -> Tensor:
        """``[N, M]`` each agent's value estimate V_i(s)."""
        if self.critic is None:
            raise RuntimeError("this population has no per-agent critics")
        return self.critic(states).squeeze(-1)

    def actor_parameters(self) -> list[Tensor]:
        return self.policy.group_parameters()

    def critic_parameters(self) -> list[Tensor]:
        return [] if self.critic is None else self.critic.group_parameters()


class PopulationOptimiser:
    """Adam for actors and critics with per-agent gradient clipping.

    Adam is elementwise, so one Adam over a stacked tensor equals one Adam per agent; clipping is per
    agent (``per_agent_grad_clip_``). ``foreach`` Adam gives bitwise the same steps as the default
    per-tensor loop at about half the time on CPU. ``step`` takes the summed loss of all agents: since agent ``i``'s
    loss depends only on slice ``i``, the gradient of the sum is each agent's own gradient.
    """

    def __init__(self, population: Population, actor_lr: float, critic_lr: float, max_grad_norm: float):
        self.population = population
        self.max_grad_norm = max_grad_norm
        self.actor = torch.optim.Adam(population.actor_parameters(), lr=actor_lr, foreach=True)
        critic_params = population.critic_parameters()
        self.critic = torch.optim.Adam(critic_params, lr=critic_lr, foreach=True) if critic_params else None

    def step_actor(self, loss: Tensor) -> Tensor:
        """Backpropagate ``loss`` (sum over agents) into the actors and step; returns grad norms ``[N]``."""
        return self._step(self.actor, self.population.actor_parameters(), loss)

    def step_critic(self, loss: Tensor) -> Tensor:
        if self.critic is None:
            raise RuntimeError("this population has no per-agent critics")
        return self._step(self.critic, self.population.critic_parameters(), loss)

    def _step(self, opt: torch.optim.Optimizer, params: Sequence[Tensor], loss: Tensor) -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms = per_agent_grad_clip_(params, self.population.n_agents, self.max_grad_norm)
        opt.step()
        return norms

    def state_dict(self) -> dict:
        critic = None if self.critic is None else self.critic.state_dict()
        return {"actor": self.actor.state_dict(), "critic": critic}

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
