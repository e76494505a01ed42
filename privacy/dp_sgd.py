"""DP-SGD for the parameter-sharing baselines (PS's policy bank, VPS's critic bank) with Opacus.

PS and VPS publish network parameters, so noise on the *messages* would have to cover a whole network;
DP-SGD instead bounds what each training sample can do to the parameters before they are sent. Per
step: every (sample, agent) gradient is clipped to L2 norm ≤ C over all of that agent's slices of the
bank, the clipped gradients are summed, Gaussian noise of std σ·C is added to every coordinate, and
the sum is divided by the minibatch size; the population's per-agent gradient clip and Adam then run
on that as post-processing. Each agent owns slice ``i`` of every bank tensor and the noise is
independent per coordinate, so this is one Gaussian mechanism per agent, as in ``PopulationOptimiser``.

Opacus pieces (found by trying, ``docs/leakage.md`` "DP-SGD"):

- Per-sample gradients: ``GradSampleModule`` hooks do not see a ``StackedMLP`` (its parameters sit in
  ``ParameterList`` children that never run ``forward``; Opacus silently leaves ``grad_sample`` None).
  ``BankView`` re-registers the bank's *own* parameters on a leaf module with a plain, vmappable forward
  (batch first), for which Opacus takes its functorch path (``prepare_layer``: vmap of grad over samples).
- Clipping per agent (not over the whole bank, which would mix agents): ``clip_and_sum_per_agent``,
  then ``DPOptimizer.add_noise`` / ``scale_grad`` with an explicit ``torch.Generator`` (seeded from the
  run seed: same seed, same noise) and ``RDPAccountant``.

Accounting (``DpSgdAccountant``): one RDP step per optimiser step at sample rate q = 1 / minibatches.
PPO's minibatches are a shuffled partition of the update's batch, not Poisson sampling; with one
minibatch (the default) q = 1 and nothing is assumed, with k minibatches the accountant's ε assumes an
amplification the run does not get. ``epsilon`` is per *sample* (one transition of the agent's data);
``epsilon_reward`` is for the secret the leakage study attacks, the agent's reward parameter, which
changes every sample of every minibatch: group privacy over the minibatch, i.e. the same steps with
noise multiplier σ / minibatch size and q = 1. It is astronomically large, and reported as it is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from confide.core.networks import StackedMLP, per_agent_grad_clip_

if TYPE_CHECKING:
    from confide.experiments.config import RunConfig


@dataclass(frozen=True)
class DpSgdSettings:
    """DP-SGD of one bank: per-sample clip C, noise multiplier σ (noise std σ·C), δ, and the run seed."""

    clip: float
    noise_multiplier: float = 0.0
    delta: float = 1e-5
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.clip > 0 and math.isfinite(self.clip)):
            raise ValueError(f"clip must be a finite number > 0, got {self.clip}")
        if not (self.noise_multiplier >= 0 and math.isfinite(self.noise_multiplier)):
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")


def dp_sgd_settings(config: RunConfig) -> DpSgdSettings | None:
    """The run's DP-SGD settings (``algo.dp_sgd_*``), or None when DP-SGD is off (no clip bound)."""
    algo = config.algo
    if algo.dp_sgd_clip is None:
        return None
    return DpSgdSettings(algo.dp_sgd_clip, algo.dp_sgd_noise, algo.dp_sgd_delta, config.train.seed)


def noise_generator(seed: int) -> torch.Generator:
    """DP-SGD's own stream: the fifth child of the run seed (the trainer and channel use the first four)."""
    state = np.random.SeedSequence(seed).spawn(5)[4].generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


# ---------------------------------------------------------------------------------------------------
# per-sample gradients of a bank


def stacked_forward(
    x: Tensor, weights: Sequence[Tensor], biases: Sequence[Tensor], activation: str, final: bool
) -> Tensor:
    """``[M, G, out]``: every group of a ``StackedMLP`` on inputs ``x [M, in]`` with plain (vmappable) ops."""
    h = torch.einsum("mi,gio->mgo", x, weights[0]) + biases[0]
    for w, b in zip(weights[1:], biases[1:], strict=True):
        h = torch.relu(h) if activation == "relu" else torch.tanh(h)
        h = torch.einsum("mgi,gio->mgo", h, w) + b
    if final:
        h = torch.relu(h) if activation == "relu" else torch.tanh(h)
    return h


class BankView(nn.Module):
    """A leaf module holding a ``StackedMLP``'s own parameters (the same tensors), batch first.

    Opacus computes its per-sample gradients with functorch; gradients land on the bank's parameters.
    """

    def __init__(self, bank: StackedMLP) -> None:
        super().__init__()
        self.layers = len(bank.weights)
        self.activation = bank.activation
        self.final_activation = bank.final_activation
        for layer in range(self.layers):
            self.register_parameter(f"weight{layer}", bank.weights[layer])
            self.register_parameter(f"bias{layer}", bank.biases[layer])

    def forward(self, x: Tensor) -> Tensor:
        weights = [getattr(self, f"weight{k}") for k in range(self.layers)]
        biases = [getattr(self, f"bias{k}") for k in range(self.layers)]
        return stacked_forward(x, weights, biases, self.activation, self.final_activation)


def clip_and_sum_per_agent(grad_samples: Sequence[Tensor], n_agents: int, clip: float) -> list[Tensor]:
    """Σ over samples of each (sample, agent) gradient clipped to L2 norm ≤ ``clip``.

    Args:
        grad_samples: per parameter ``[M, G, ...]`` with ``G = n_agents · k`` (agent i owns groups
            ``i·k … i·k + k − 1``); the norm of sample m for agent i runs over all its slices of all
            parameters.

    Returns:
        per parameter ``[G, ...]``: the clipped sum (Opacus' ``p.summed_grad``).
    """
    m = grad_samples[0].shape[0]
    flat = [g.reshape(m, n_agents, -1) for g in grad_samples]
    norms = torch.stack([f.norm(dim=-1) for f in flat], dim=-1).norm(dim=-1)  # [M, N]
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)  # Opacus' clip factor, per agent
    return [
        torch.einsum("mn,mnp->np", factor, f).reshape(g.shape[1:])
        for f, g in zip(flat, grad_samples, strict=True)
    ]


# ---------------------------------------------------------------------------------------------------
# accounting


REWARD_ORDERS = [1 + 10 ** (e / 8) for e in range(-32, -8)]
"""RDP orders 1 + 10⁻⁴ … 1 + 10⁻¹·¹²⁵ for ``epsilon_reward`` (Opacus' defaults start at 1.1)."""


class DpSgdAccountant:
    """Opacus RDP accounting of a run's DP-SGD steps (every agent takes every step, so one history)."""

    def __init__(self, noise_multiplier: float, sample_rate: float) -> None:
        self.noise_multiplier = float(noise_multiplier)
        self.sample_rate = float(sample_rate)
        self.minibatch_size = 0
        """The largest minibatch seen: the group size of ``epsilon_reward``."""
        self.steps = 0

    def step(self, minibatch_size: int) -> None:
        """Record one optimiser step on a minibatch of ``minibatch_size`` samples."""
        self.steps += 1
        self.minibatch_size = max(self.minibatch_size, int(minibatch_size))

    def epsilon(self, delta: float) -> float:
        """ε per sample: ``steps`` subsampled Gaussian steps (σ, q); inf without noise."""
        return self._epsilon(self.noise_multiplier, self.sample_rate, delta, None)

    def epsilon_reward(self, delta: float) -> float:
        """ε for the agent's reward parameter: every sample of a minibatch changes (group of its size).

        Its noise multiplier σ / minibatch size is tiny, so the best RDP order lies just above 1, below
        Opacus' default orders: orders 1 + 10⁻⁴ … are added (more orders can only tighten the bound)."""
        return self._epsilon(self.noise_multiplier / self.minibatch_size, 1.0, delta, REWARD_ORDERS)

    def _epsilon(self, sigma: float, q: float, delta: float, alphas: list[float] | None) -> float:
        if self.steps == 0:
            return 0.0
        if sigma == 0:
            return math.inf
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = [(sigma, q, self.steps)]
        orders = None if alphas is None else [*alphas, *accountant.DEFAULT_ALPHAS]
        return float(accountant.get_epsilon(delta=delta, alphas=orders))

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "minibatch_size": self.minibatch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.minibatch_size = int(state["minibatch_size"])


# ---------------------------------------------------------------------------------------------------
# the DP-SGD step


class DpSgd:
    """DP-SGD of one bank of a population: its forward for the loss, and the private optimiser step.

    Args:
        bank: the bank whose parameters are released (PS: the policy bank, VPS: the critic bank).
        optimiser: the population's Adam over exactly those parameters (wrapped, not replaced).
        n_agents: agents (agent i owns groups ``i·k … i·k + k − 1`` of the bank).
        max_grad_norm: the population's per-agent clip of the aggregated gradient (post-processing).
        minibatches: PPO minibatches per iteration; the accountant's q is 1 / minibatches.
    """

    def __init__(
        self,
        settings: DpSgdSettings,
        bank: StackedMLP,
        optimiser: torch.optim.Optimizer,
        n_agents: int,
        max_grad_norm: float,
        minibatches: int,
    ) -> None:
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        if not isinstance(bank, StackedMLP):
            raise ValueError("DP-SGD needs a StackedMLP bank (not the shared-trunk variant)")
        self.settings = settings
        self.n_agents = n_agents
        self.max_grad_norm = max_grad_norm
        self.params = bank.group_parameters()
        self.module = GradSampleModule(BankView(bank), batch_first=True, loss_reduction="mean")
        self.generator = noise_generator(settings.seed)
        self.optimiser = DPOptimizer(
            optimiser,
            noise_multiplier=settings.noise_multiplier,
            max_grad_norm=settings.clip,
            expected_batch_size=1,  # set to each minibatch's size in ``step``
            loss_reduction="mean",
            generator=self.generator,
        )
        self.accountant = DpSgdAccountant(settings.noise_multiplier, 1.0 / max(1, minibatches))

    def forward(self, x: Tensor) -> Tensor:
        """``[G, M, out]`` like the bank, through the per-sample-gradient hooks."""
        return self.module(x).transpose(0, 1)

    def step(self, loss: Tensor) -> Tensor:
        """Backpropagate ``loss`` (Σ over agents of each agent's *mean* over the minibatch), then
        clip per (sample, agent), sum, add noise, divide by the minibatch size, apply the population's
        per-agent clip and Adam. Returns the per-agent norms of the noised gradient ``[N]``."""
        opt = self.optimiser
        opt.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # the bank's inputs never need gradients: the hook is right
            warnings.filterwarnings("ignore", "Full backward hook is firing", UserWarning)
            loss.backward()
        samples = [p.grad_sample for p in self.params]
        summed = clip_and_sum_per_agent(samples, self.n_agents, self.settings.clip)
        for p, s in zip(self.params, summed, strict=True):
            p.summed_grad = s
        opt.add_noise()
        opt.expected_batch_size = samples[0].shape[0]
        opt.scale_grad()
        norms = per_agent_grad_clip_(self.params, self.n_agents, self.max_grad_norm)
        opt.original_optimizer.step()
        self.accountant.step(samples[0].shape[0])
        return norms

    def report(self) -> dict[str, Any]:
        """What ``summary.json`` shows under ``dp_sgd``: settings, steps and each agent's (ε, δ)."""
        delta = self.settings.delta
        eps, eps_reward = self.accountant.epsilon(delta), self.accountant.epsilon_reward(delta)
        per_agent = {"epsilon": _finite(eps), "epsilon_reward": _finite(eps_reward), "delta": delta}
        return {
            "clip": self.settings.clip,
            "noise_multiplier": self.settings.noise_multiplier,
            "sample_rate": self.accountant.sample_rate,
            "minibatch_size": self.accountant.minibatch_size,
            "steps": self.accountant.steps,
            "privacy": {str(agent): dict(per_agent) for agent in range(self.n_agents)},
        }

    def state_dict(self) -> dict[str, Any]:
        return {"accountant": self.accountant.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(state["accountant"])
        self.generator.set_state(state["generator"])


def _finite(x: float) -> float | None:
    """JSON has no infinity: None stands for ε = ∞ (no noise)."""
    return x if math.isfinite(x) else None
