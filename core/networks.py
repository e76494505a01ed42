"""Batched networks: many small MLPs evaluated as a few grouped tensor ops.

confide's agents own many small networks: under AS/SS each of N agents has its own policy plus one
head per peer it anticipates (N² actors), and a critic. Looping over N² ``nn.Module``s in Python is
slow, so every bank of equally shaped MLPs is one ``StackedMLP`` whose parameters carry a leading
*group* axis ``G``; a layer is one ``baddbmm`` over a chunk of groups. Group ``g`` is a separate
network: nothing mixes across the group axis (a test proves equality with a per-module reference),
and Adam is elementwise, so one Adam over a stacked tensor is exactly G independent Adams.

Speed (issue 9). A bank of G groups on M samples keeps ``G·M·Σhidden`` activations for the backward
pass: ~660 MB for the 900 actors of AS/SS at N = 30 on a 960-sample minibatch. Evaluating all groups
as one op per layer streams every activation and every gradient temporary through DRAM and page-faults
fresh memory on every call, which made the monolithic bank slower than a Python loop over modules.
So ``StackedMLP`` runs a hand-written autograd function over *chunks* of groups whose activations fit
in about an L2 cache (``CHUNK_BYTES``: 2 groups on a 960-sample minibatch, ~80 on 32 rollout states;
a bank that fits in one chunk trains through plain autograd ops, which cost less Python):

- forward: per chunk and layer one ``baddbmm``, then the activation in place. Hidden activations the
  backward needs go to a workspace the module keeps and reuses at its next training forward (one
  allocation per module, not one page-faulted allocation per minibatch);
- the first hidden layer is recomputed in backward when its input is no wider than it (N → 128 for
  AS/SS: 8–16% more FLOPs for N = 8–50, measured free), so the workspace holds only the later layers
  (221 MB instead of 660 at N = 30);
- backward: per chunk, every layer's weight, bias and input gradients while the chunk's temporaries
  are still in cache; ReLU/tanh derivatives in place;
- a layer with few outputs (the action logits, a value) uses the transposed product ``Wᵀ·hᵀ``, which
  MKL runs several times faster than ``h·W`` with 1–2 output columns.

Each group's numbers come from the same per-group products whatever the chunk size; MKL's rounding
can still depend on memory alignment, so chunk sizes agree to ~1e-7 and a fixed chunking (chosen from
the shapes only) is bitwise deterministic (both tested). ``torch.compile`` of the chunk kernels was
measured slower than this eager path (``benchmarks/compile_chunks.py``), so there is none. Higher-order
gradients through a bank are not supported (no confide algorithm needs them).

Initialisation matches ``torch.nn.Linear`` (uniform in ±1/√fan_in for weights and biases), drawn from
an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

Activation = Literal["relu", "tanh"]

CHUNK_BYTES = 2 * 2**20
"""Activation bytes per chunk of groups: about one L2 cache (1 MiB per core here; chunks of 1–4 groups,
0.7–3 MiB, measured alike within noise at N = 8 and 30)."""

NARROW = 8
"""A layer with at most this many outputs is computed as ``Wᵀ·hᵀ`` (see the module docstring)."""


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> nn.Parameter:
    return nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)


class _Workspace:
    """One reusable block of activation memory (the largest handed back), private to one bank."""

    def __init__(self) -> None:
        self.free: Tensor | None = None

    def take(self, numel: int, like: Tensor) -> Tensor:
        buf = self.free
        if buf is not None and buf.numel() >= numel and buf.dtype == like.dtype and buf.device == like.device:
            self.free = None
            return buf
        return like.new_empty(numel)

    def give(self, buf: Tensor) -> None:
        if self.free is None or buf.numel() > self.free.numel():
            self.free = buf


def _activate_(x: Tensor, activation: Activation) -> Tensor:
    return x.relu_() if activation == "relu" else x.tanh_()


def _activation_backward_(grad: Tensor, out: Tensor, activation: Activation) -> Tensor:
    """``grad ← grad · act'`` in place, from the activation's output ``out`` (as autograd does)."""
    if activation == "relu":
        return torch.ops.aten.threshold_backward.grad_input(grad, out, 0.0, grad_input=grad)
    return torch.ops.aten.tanh_backward.grad_input(grad, out, grad_input=grad)


def _per_chunk(t: Tensor, chunk: int, groups: int) -> list[Tensor]:
    """``t`` (``[chunk, ...]``: scratch, or a stride-0 expanded input) for every chunk of ``groups``."""
    full, rest = divmod(groups, chunk)
    return [t] * full + ([t[:rest]] if rest else [])


def _chunk_inputs(x: Tensor, chunk: int, groups: int, transpose: bool = False) -> list[Tensor]:
    """Per-chunk inputs ``[c, M, in]`` (``[c, in, M]`` if transposed): views of a shared or per-group x."""
    if x.dim() == 3:
        return list((x.transpose(1, 2) if transpose else x).split(chunk))
    return _per_chunk((x.T if transpose else x).expand(chunk, -1, -1), chunk, groups)


def _forward_chunks(
    x: Tensor,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    bank: StackedMLP,
    chunk: int,
    kept: Sequence[Tensor | None],
) -> Tensor:
    """``[G, M, out]`` outputs; hidden layer ``l`` is kept in ``kept[l]`` (``[G, M, h]``) unless None."""
    groups, m, last = weights[0].shape[0], x.shape[-2], len(weights) - 1
    n_out, c = weights[-1].shape[2], min(chunk, groups)
    narrow = n_out <= NARROW
    out = x.new_empty(groups, n_out, m) if narrow else x.new_empty(groups, m, n_out)
    # Every per-chunk view is made up front (one ``split`` per tensor): the loop runs only kernels.
    hidden = [
        _per_chunk(x.new_empty(c, m, w.shape[2]), chunk, groups) if k is None else k.split(chunk)
        for w, k in zip(weights, kept, strict=False)
    ]
    ws = [w.split(chunk) for w in weights[:-1]]
    bs = [b.unsqueeze(1).split(chunk) for b in biases[:-1]]
    w_out = (weights[-1].transpose(1, 2) if narrow else weights[-1]).split(chunk)
    b_out = biases[-1].unsqueeze(2 if narrow else 1).split(chunk)
    for k, (h, o) in enumerate(zip(_chunk_inputs(x, chunk, groups), out.split(chunk), strict=True)):
        for layer in range(last):
            h = _activate_(
                torch.baddbmm(bs[layer][k], h, ws[layer][k], out=hidden[layer][k]), bank.activation
            )
        if narrow:
            torch.baddbmm(b_out[k], w_out[k], h.transpose(1, 2), out=o)
        else:
            torch.baddbmm(b_out[k], h, w_out[k], out=o)
        if bank.final_activation:
            _activate_(o, bank.activation)
    return out.transpose(1, 2).contiguous() if narrow else out


class _ChunkedMLP(torch.autograd.Function):
    """Forward and backward of a ``StackedMLP`` chunk by chunk (module docstring).

    Saved for backward: the inputs, the weights, the biases of the recomputed layers, the kept hidden
    activations (views of the bank's workspace) and, with a final activation, the output.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bank: StackedMLP, chunk: int, *params: Tensor) -> Tensor:
        n = len(params) // 2
        weights, biases = params[:n], params[n:]
        groups, m, r = weights[0].shape[0], x.shape[-2], bank.recomputed_layers
        widths = [w.shape[2] for w in weights[r:-1]]
        base = bank._workspace.take(groups * m * sum(widths), x)
        kept: list[Tensor | None] = [None] * r
        offset = 0
        for width in widths:
            kept.append(base[offset : offset + groups * m * width].view(groups, m, width))
            offset += groups * m * width
        out = _forward_chunks(x, weights, biases, bank, chunk, kept)
        ctx.bank, ctx.chunk, ctx.base, ctx.layers = bank, chunk, base, n
        ctx.save_for_backward(x, *weights, *biases[:r], *kept[r:], out if bank.final_activation else None)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        bank, chunk, n = ctx.bank, ctx.chunk, ctx.layers
        r, activation = bank.recomputed_layers, bank.activation
        x, *saved = ctx.saved_tensors
        weights, biases, kept, out = saved[:n], saved[n : n + r], saved[n + r : -1], saved[-1]
        groups, m, last = weights[0].shape[0], x.shape[-2], n - 1
        c, narrow = min(chunk, groups), weights[-1].shape[2] <= NARROW
        if bank.final_activation:
            grad_out = _activation_backward_(grad_out.clone(), out, activation)
        grad_w = [torch.empty_like(w) for w in weights]
        grad_b = [w.new_empty(groups, w.shape[2]) for w in weights]
        if narrow:  # the transposed product gives the last layer's weight gradient transposed
            grad_w[last] = weights[-1].new_empty(groups, weights[-1].shape[2], weights[-1].shape[1])
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        # Per-chunk views, made up front. acts[l][k]: hidden layer l of chunk k, recomputed or kept.
        recomputed = [x.new_empty(c, m, w.shape[2]) for w in weights[:r]]
        acts = [_per_chunk(a, chunk, groups) for a in recomputed] + [k.split(chunk) for k in kept]
        acts = [_chunk_inputs(x, chunk, groups), *acts]  # acts[0]: the inputs, acts[l + 1]: layer l
        acts_t = [_chunk_inputs(x, chunk, groups, transpose=True)]
        acts_t += [_per_chunk(a.transpose(1, 2), chunk, groups) for a in recomputed]
        acts_t += [k.transpose(1, 2).split(chunk) for k in kept]
        grad_hidden = [_per_chunk(x.new_empty(c, m, w.shape[2]), chunk, groups) for w in weights[:-1]]
        ws = [w.split(chunk) for w in weights[:r]]
        bs = [b.unsqueeze(1).split(chunk) for b in biases]
        ws_t = [w.transpose(1, 2).split(chunk) for w in weights]
        gw, gb = [g.split(chunk) for g in grad_w], [g.split(chunk) for g in grad_b]
        grads_out, grads_out_t = grad_out.split(chunk), grad_out.transpose(1, 2).split(chunk)
        for k in range(len(grads_out)):
            for layer in range(r):
                o = torch.baddbmm(bs[layer][k], acts[layer][k], ws[layer][k], out=acts[layer + 1][k])
                _activate_(o, activation)
            g = grads_out[k]
            for layer in range(last, -1, -1):
                if layer == last and narrow:
                    torch.bmm(grads_out_t[k], acts[layer][k], out=gw[layer][k])
                else:
                    torch.bmm(acts_t[layer][k], g, out=gw[layer][k])
                torch.sum(g, dim=1, out=gb[layer][k])
                if layer > 0:
                    g = torch.bmm(g, ws_t[layer][k], out=grad_hidden[layer - 1][k])
                    _activation_backward_(g, acts[layer][k], activation)
                elif grad_x is not None:
                    g_x = torch.bmm(g, ws_t[0][k])
                    if x.dim() == 2:
                        grad_x += g_x.sum(dim=0)
                    else:
                        grad_x[k * chunk : k * chunk + len(g_x)] = g_x
        if narrow:
            grad_w[last] = grad_w[last].transpose(1, 2).contiguous()
        bank._workspace.give(ctx.base)  # reusable: a stale second backward fails autograd's version check
        needs = ctx.needs_input_grad[3:]
        grads = [g if need else None for g, need in zip((*grad_w, *grad_b), needs, strict=True)]
        return (grad_x, None, None, *grads)


def _lookup(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``[G, M, h]``: row ``s`` of group ``g``'s ``weight`` plus its bias, for one-hot inputs ``x``.

    ``x``: ``[M, S]`` shared by the groups or ``[G, M, S]``. A row that is not exactly one-hot raises
    ValueError (a silent argmax would train on the wrong state).
    """
    index = x.argmax(dim=-1)
    if not bool(((x == 0) | (x == 1)).all()) or not bool((x.sum(dim=-1) == 1).all()):
        raise ValueError("one_hot_input: every input row must be a one-hot vector")
    groups, states, width = weight.shape
    offsets = torch.arange(groups, device=x.device).unsqueeze(1) * states  # [G, 1]
    rows = (offsets + index).reshape(-1)  # [G·M] rows of the flattened [G·S, h] table
    out = weight.reshape(groups * states, width).index_select(0, rows).view(groups, -1, width)
    return out + bias.unsqueeze(1)


class StackedMLP(nn.Module):
    """``G`` independent MLPs with identical layer sizes.

    Args:
        groups: number of independent networks G.
        sizes: layer widths including input and output, e.g. ``(8, 128, 64, 2)``.
        generator: source of the initial weights.
        activation: hidden non-linearity (the papers use ReLU).
        final_activation: apply it to the output too (a trunk whose output feeds further layers).
        chunk_groups: groups per chunk; ``None`` picks it from ``CHUNK_BYTES`` and the batch size.
        one_hot_input: every input row is a one-hot vector (the stochastic game's state), so the first
            layer is a row lookup ``W₀[g, s] + b₀`` instead of a product: the same function and the same
            parameters, without the first layer's FLOPs (about a third of an update of DPO's 100 → 128
            → 128 networks). Forward values are bitwise those of the product (a one-hot row times W
            adds exact zeros); weight gradients sum the same terms in another order (~1e-7). Inputs
            that are not one-hot raise ValueError.
    """

    def __init__(
        self,
        groups: int,
        sizes: Sequence[int],
        generator: torch.Generator,
        activation: Activation = "relu",
        *,
        final_activation: bool = False,
        chunk_groups: int | None = None,
        one_hot_input: bool = False,
    ) -> None:
        super().__init__()
        if groups < 1 or len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"StackedMLP needs groups >= 1 and positive sizes, got {groups}, {sizes}")
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        if chunk_groups is not None and chunk_groups < 1:
            raise ValueError(f"chunk_groups must be >= 1 or None, got {chunk_groups}")
        if one_hot_input and len(sizes) < 3:
            raise ValueError(f"one_hot_input needs a hidden layer after the lookup, got sizes {tuple(sizes)}")
        self.groups = groups
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self.final_activation = final_activation
        self.chunk_groups = chunk_groups
        self.one_hot_input = one_hot_input
        # The first hidden layer is recomputed in backward when its input is no wider than it (N → 128
        # for AS/SS: cheap), so the workspace keeps only the later layers. After a lookup nothing is
        # recomputed: the lookup's output is kept anyway, and the next layer is a full product.
        narrow_input = len(self.sizes) > 2 and self.sizes[0] <= self.sizes[1]
        self.recomputed_layers = int(narrow_input and not one_hot_input)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(_uniform((groups, fan_in, fan_out), bound, generator))
            self.biases.append(_uniform((groups, fan_out), bound, generator))
        self._workspace = _Workspace()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()  # copies and pickles do not carry the activation workspace
        state["_workspace"] = _Workspace()
        return state

    def chunk_size(self, samples: int, groups: int | None = None) -> int:
        """Groups evaluated per chunk on ``samples`` inputs: ``chunk_groups`` or the cache heuristic."""
        groups = self.groups if groups is None else groups
        if self.chunk_groups is not None:
            return min(self.chunk_groups, groups)
        per_group = max(1, samples * sum(self.sizes[1:]) * self.weights[0].element_size())
        return max(1, min(groups, CHUNK_BYTES // per_group))

    def forward(self, x: Tensor, index: Tensor | slice | None = None) -> Tensor:
        """Evaluate the groups (all, or ``index``) on inputs.

        Args:
            x: ``[M, in]`` shared by every group, or ``[G', M, in]`` one input per group.
            index: optional group ids to evaluate: a long tensor ``[G']``, or a ``slice`` (a view of
                the weights, no copy; e.g. every agent's own head ``slice(None, None, N + 1)``).

        Returns:
            ``[G', M, out]``.
        """
        weights, biases = list(self.weights), list(self.biases)
        if isinstance(index, slice):
            weights, biases = [w[index] for w in weights], [b[index] for b in biases]
        elif index is not None:
            weights = [w.index_select(0, index) for w in weights]
            biases = [b.index_select(0, index) for b in biases]
        groups = weights[0].shape[0]
        if x.dim() not in (2, 3) or x.shape[-1] != self.sizes[0] or (x.dim() == 3 and x.shape[0] != groups):
            raise ValueError(
                f"expected inputs [M, {self.sizes[0]}] or [{groups}, M, {self.sizes[0]}], got {tuple(x.shape)}"
            )
        if self.one_hot_input:
            x = _activate_(_lookup(x, weights[0], biases[0]), self.activation)
            weights, biases = weights[1:], biases[1:]
        chunk = self.chunk_size(x.shape[-2], groups)
        params = (*weights, *biases)
        if not torch.is_grad_enabled() or not (x.requires_grad or any(p.requires_grad for p in params)):
            return _forward_chunks(x, weights, biases, self, chunk, [None] * (len(weights) - 1))
        if chunk < groups:
            return _ChunkedMLP.apply(x, self, chunk, *params)
        h = x if x.dim() == 3 else x.expand(groups, -1, -1)  # one chunk: autograd's ops cost less Python
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if layer < len(weights) - 1 or self.final_activation:
                h = torch.relu(h) if self.activation == "relu" else torch.tanh(h)
        return h

    def group_parameters(self) -> list[Tensor]:
        """Parameters whose axis 0 is the group axis (all of them)."""
        return [*self.weights, *self.biases]


class SharedTrunkHeads(nn.Module):
    """``agents × heads`` networks where each agent's heads share one trunk (AS/SS Sec. 6 remedy).

    Agent ``i``'s head ``h`` (group ``g = i·heads + h``) is ``Linear(hidden[-1], out) ∘ act ∘ trunk_i``:
    the trunk (``sizes[:-1]``, activation on its output too) belongs to agent ``i`` alone, so agents
    stay independent, but its ``heads`` outputs cost one trunk instead of ``heads`` MLPs. Same call
    interface as ``StackedMLP`` over ``G = agents·heads`` groups. A different model from separate MLPs.
    """

    def __init__(
        self,
        agents: int,
        heads: int,
        sizes: Sequence[int],
        generator: torch.Generator,
        activation: Activation = "relu",
        *,
        one_hot_input: bool = False,
    ) -> None:
        super().__init__()
        if len(sizes) < 3:
            raise ValueError(f"a shared trunk needs at least one hidden layer, got sizes {tuple(sizes)}")
        self.agents, self.heads, self.groups = agents, heads, agents * heads
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self.trunk = StackedMLP(
            agents, self.sizes[:-1], generator, activation, final_activation=True, one_hot_input=one_hot_input
        )
        features, n_out = self.sizes[-2], self.sizes[-1]
        bound = 1.0 / math.sqrt(features)
        self.head_weight = _uniform((self.groups, features, n_out), bound, generator)
        self.head_bias = _uniform((self.groups, n_out), bound, generator)

    def forward(self, x: Tensor, index: Tensor | slice | None = None) -> Tensor:
        """``[G', M, out]`` for groups ``index`` (default all) on ``x`` ``[M, in]`` or ``[G', M, in]``."""
        n, h = self.agents, self.heads
        if x.dim() == 3 or index is not None:
            groups = torch.arange(self.groups, device=x.device)
            groups = groups if index is None else groups[index]
            owners = torch.div(groups, h, rounding_mode="floor")
            features = self.trunk(x, owners) if x.dim() == 3 else self.trunk(x).index_select(0, owners)
            w, b = self.head_weight.index_select(0, groups), self.head_bias.index_select(0, groups)
            return torch.baddbmm(b.unsqueeze(1), features, w)
        features = self.trunk(x)  # [N, M, F]: each agent's trunk once
        f, a = self.sizes[-2], self.sizes[-1]
        w = self.head_weight.view(n, h, f, a).permute(0, 2, 1, 3).reshape(n, f, h * a)
        out = torch.baddbmm(self.head_bias.view(n, 1, h * a), features, w)  # [N, M, H·A]
        return out.view(n, -1, h, a).transpose(1, 2).reshape(self.groups, -1, a)

    def group_parameters(self) -> list[Tensor]:
        """Parameters whose axis 0 is agent-major (trunk: one row per agent; heads: one per group)."""
        return [*self.trunk.group_parameters(), self.head_weight, self.head_bias]


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
            if layer != len(stacked.weights) - 1 or stacked.final_activation:
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
