"""Batched networks: many small MLPs evaluated as a few grouped tensor ops.

confide's agents own many small networks: under AS/SS each of N agents has its own policy plus one
head per peer it anticipates (N² actors), and a critic. Looping over N² ``nn.Module``s in Python is
slow, so every bank of equally shaped MLPs is one ``StackedMLP`` whose parameters carry a leading
*group* axis ``G``; a layer is one ``matmul``/``baddbmm`` over all groups. Group ``g`` is a separate
network: nothing mixes across the group axis (a test proves equality with a per-module reference),
and Adam is elementwise, so one Adam over a stacked tensor is exactly G independent Adams.

Initialisation matches ``torch.nn.Linear`` (uniform in ±1/√fan_in for weights and biases), drawn from
an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "tanh"]


class StackedMLP(nn.Module):
    """``G`` independent MLPs with identical layer sizes.

    Args:
        groups: number of independent networks G.
        sizes: layer widths including input and output, e.g. ``(8, 128, 64, 2)``.
        generator: source of the initial weights.
        activation: hidden non-linearity (the papers use ReLU).
    """

    def __init__(
        self,
        groups: int,
        sizes: Sequence[int],
        generator: torch.Generator,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if groups < 1 or len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"StackedMLP needs groups >= 1 and positive sizes, got {groups}, {sizes}")
        self.groups = groups
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(groups, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(groups, fan_out, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def _act(self, x: Tensor) -> Tensor:
        return torch.relu(x) if self.activation == "relu" else torch.tanh(x)

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """Evaluate the groups (all, or ``index`` ``[G']``) on inputs.

        Args:
            x: ``[M, in]`` shared by every group, or ``[G', M, in]`` one input per group.
            index: optional long tensor of group ids to evaluate.

        Returns:
            ``[G', M, out]``.
        """
        h = x
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if index is not None:
                w = w.index_select(0, index)
                b = b.index_select(0, index)
            if h.dim() == 2:
                h = torch.matmul(h, w) + b.unsqueeze(1)
            else:
                h = torch.baddbmm(b.unsqueeze(1), h, w)
            if layer != last:
                h = self._act(h)
        return h

    def group_parameters(self) -> list[Tensor]:
        """Parameters whose axis 0 is the group axis (all of them)."""
        return [*self.weights, *self.biases]


def reference_modules(stacked: StackedMLP) -> nn.ModuleList:
    """One ordinary ``nn.Sequential`` per group with the same weights (for tests and benchmarks)."""
    modules = nn.ModuleList()
    for g in range(stacked.groups):
        layers: list[nn.Module] = []
        for layer, (w, b) in enumerate(zip(stacked.weights, stacked.biases, strict=True)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[g].T)
                lin.bias.copy_(b[g])
            layers.append(lin)
            if layer != len(stacked.weights) - 1:
                layers.append(nn.ReLU() if stacked.activation == "relu" else nn.Tanh())
        modules.append(nn.Sequential(*layers))
    return modules


def per_agent_grad_clip_(params: Sequence[Tensor], n_agents: int, max_norm: float) -> Tensor:
    """Clip gradients to ``max_norm`` separately for each agent; return the pre-clip norms ``[N]``.

    Every tensor in ``params`` has a leading axis that is a multiple of ``n_agents`` whose blocks of
    ``axis0 // n_agents`` rows belong to one agent, in order. Clipping by a global norm would let one
    agent's gradient shrink another's step; this never does.
    """
    sq = None
    for p in params:
        if p.grad is None:
            continue
        g = p.grad.reshape(n_agents, -1)
        s = (g * g).sum(dim=1)
        sq = s if sq is None else sq + s
    if sq is None:
        return torch.zeros(n_agents)
    norms = sq.sqrt()
    if max_norm > 0:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for p in params:
            if p.grad is not None:
                shape = (n_agents,) + (1,) * (p.grad.dim())
                p.grad.view(n_agents, -1, *p.grad.shape[1:]).mul_(scale.view(shape))
    return norms
