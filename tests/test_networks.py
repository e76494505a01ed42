"""Batched networks equal a per-module reference; agents' parameters are independent."""

import copy

import pytest
import torch

from confide.core.networks import StackedMLP, per_agent_grad_clip_, reference_modules
from confide.core.population import NetworkSizes, Population, PopulationOptimiser


def test_stacked_mlp_equals_per_module_reference_forward_and_backward():
    gen = torch.Generator().manual_seed(0)
    bank = StackedMLP(6, (5, 16, 8, 3), gen)
    ref = reference_modules(bank)
    x = torch.randn(11, 5, generator=gen)
    out = bank(x)
    ref_out = torch.stack([m(x) for m in ref])
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    weights = torch.randn(out.shape, generator=gen)
    (out * weights).sum().backward()
    (ref_out * weights).sum().backward()
    for layer in range(3):
        for g in range(6):
            torch.testing.assert_close(
                bank.weights[layer].grad[g], ref[g][2 * layer].weight.grad.T, rtol=1e-4, atol=1e-6
            )
            torch.testing.assert_close(
                bank.biases[layer].grad[g], ref[g][2 * layer].bias.grad, rtol=1e-4, atol=1e-6
            )


def test_index_selects_groups_and_per_group_inputs_work():
    gen = torch.Generator().manual_seed(1)
    bank = StackedMLP(4, (3, 7, 2), gen)
    x = torch.randn(5, 3, generator=gen)
    idx = torch.tensor([2, 0])
    torch.testing.assert_close(bank(x, idx), bank(x)[idx])
    torch.testing.assert_close(bank(x, slice(None, None, 3)), bank(x)[::3])  # a view, no weight copy
    xs = torch.randn(4, 5, 3, generator=gen)
    ref = reference_modules(bank)
    torch.testing.assert_close(bank(xs), torch.stack([ref[g](xs[g]) for g in range(4)]), rtol=1e-5, atol=1e-6)


def test_one_agents_loss_never_moves_another_agents_parameters():
    gen = torch.Generator().manual_seed(2)
    pop = Population(4, 3, 2, 4, NetworkSizes((8,), (8,)), gen)
    opt = PopulationOptimiser(pop, 1e-2, 1e-2, max_grad_norm=0.5)
    before = [p.detach().clone() for p in pop.actor_parameters()]
    logits = pop.all_logits(torch.randn(10, 3, generator=gen))  # [N, H, M, A]
    opt.step_actor(logits[2].pow(2).sum())  # only agent 2's loss
    for b, p in zip(before, pop.actor_parameters(), strict=True):
        changed = (b != p.detach()).reshape(4, -1).any(dim=1)
        assert changed.tolist() == [False, False, True, False]


def test_stacked_adam_with_per_agent_clipping_equals_separate_optimisers():
    gen = torch.Generator().manual_seed(3)
    n = 3
    bank = StackedMLP(n, (4, 6, 2), gen)
    refs = reference_modules(bank)
    opt = torch.optim.Adam(bank.group_parameters(), lr=1e-2)
    ref_opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in refs]
    for _ in range(5):
        x = torch.randn(7, 4, generator=gen)
        scales = torch.tensor([1.0, 50.0, 0.01])  # agent 1's gradient is large: it alone gets clipped
        opt.zero_grad()
        (bank(x).pow(2).sum(dim=(1, 2)) * scales).sum().backward()
        per_agent_grad_clip_(bank.group_parameters(), n, 0.5)
        opt.step()
        for g in range(n):
            ref_opts[g].zero_grad()
            (refs[g](x).pow(2).sum() * scales[g]).backward()
            torch.nn.utils.clip_grad_norm_(refs[g].parameters(), 0.5)
            ref_opts[g].step()
    for g in range(n):
        torch.testing.assert_close(bank.weights[0][g], refs[g][0].weight.T, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bank.biases[1][g], refs[g][2].bias, rtol=1e-4, atol=1e-5)


def test_population_heads_are_indexed_agent_major():
    gen = torch.Generator().manual_seed(4)
    n = 3
    pop = Population(n, 2, 2, n, NetworkSizes((4,), (4,)), gen)
    with torch.no_grad():
        for w in pop.policy.weights:
            w.zero_()
        pop.policy.biases[-1].copy_(torch.arange(n * n, dtype=torch.float32).unsqueeze(1).expand(n * n, 2))
    states = torch.zeros(5, 2)
    heads = pop.all_logits(states)[..., 0]  # [N, H, M]: the bias identifies the group
    for i in range(n):
        for h in range(n):
            assert torch.all(heads[i, h] == i * n + h)
    assert pop.own_logits(states)[:, 0, 0].tolist() == [0.0, 4.0, 8.0]


def _bank_grads(bank, x, weights):
    out = bank(x)
    return out, torch.autograd.grad((out * weights).sum(), [*bank.group_parameters(), x])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("sizes", [(5, 16, 8, 3), (5, 16, 8, 12), (20, 16, 2), (3, 7, 2)])
@pytest.mark.parametrize("shared_input", [True, False])
def test_chunked_equals_unchunked_forward_and_backward(activation, sizes, shared_input):
    gen = torch.Generator().manual_seed(5)
    bank = StackedMLP(7, sizes, gen, activation)
    shape = (11, sizes[0]) if shared_input else (7, 11, sizes[0])
    x = torch.randn(shape, generator=gen, requires_grad=True)
    weights = torch.randn(7, 11, sizes[-1], generator=gen)
    bank.chunk_groups = 7  # one chunk: plain autograd ops
    ref_out, ref_grads = _bank_grads(bank, x, weights)
    for chunk in (1, 3, 5):
        bank.chunk_groups = chunk
        out, grads = _bank_grads(bank, x, weights)
        torch.testing.assert_close(out, ref_out, rtol=1e-6, atol=1e-6)
        for g, ref in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, ref, rtol=1e-6, atol=1e-6)
        again_out, again_grads = _bank_grads(bank, x, weights)  # a fixed chunking is deterministic
        assert torch.equal(again_out, out) and all(map(torch.equal, again_grads, grads))
    with torch.no_grad():  # the inference path (no saved activations) computes the same outputs
        assert torch.equal(bank(x), out)


def test_chunked_backward_equals_autograd_at_the_as_shape_with_index_and_final_activation():
    gen = torch.Generator().manual_seed(6)
    n = 4
    bank = StackedMLP(n * n, (n, 128, 64, 2), gen, final_activation=True)
    assert bank.chunk_size(960) == 2  # the cache heuristic splits a minibatch into chunks
    x = torch.randn(960, n, generator=gen)
    idx = torch.tensor([0, 5, 10, 15, 5])
    out = bank(x, idx)
    ref = x
    for w, b in zip(bank.weights, bank.biases, strict=True):
        ref = torch.relu(torch.matmul(ref, w[idx]) + b[idx].unsqueeze(1))  # plain autograd
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    weights = torch.randn(out.shape, generator=gen)
    grads = torch.autograd.grad((out * weights).sum(), bank.group_parameters())
    ref_grads = torch.autograd.grad((ref * weights).sum(), bank.group_parameters())
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    assert grads[0][1].abs().sum() == 0  # a group outside the index gets no gradient


def test_two_live_graphs_and_a_stale_retained_graph():
    gen = torch.Generator().manual_seed(7)
    bank = StackedMLP(3, (2, 8, 8, 1), gen, chunk_groups=2)  # the 2nd hidden layer goes to the workspace
    x1, x2 = torch.randn(4, 2, generator=gen), torch.randn(5, 2, generator=gen)
    ref = reference_modules(bank)
    a, b = bank(x1), bank(x2)  # two forwards before any backward: each keeps its own activations
    (a.sum() + 2 * b.sum()).backward()
    (torch.stack([m(x1) for m in ref]).sum() + 2 * torch.stack([m(x2) for m in ref]).sum()).backward()
    torch.testing.assert_close(bank.weights[0].grad[1], ref[1][0].weight.grad.T, rtol=1e-5, atol=1e-6)
    stale = bank(x1)
    stale.sum().backward(retain_graph=True)
    bank(x1)  # reuses the workspace the retained graph saved
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        stale.sum().backward()


def test_copies_do_not_carry_the_workspace():
    gen = torch.Generator().manual_seed(8)
    bank = StackedMLP(2, (3, 4, 4, 2), gen, chunk_groups=1)
    bank(torch.randn(6, 3, generator=gen)).sum().backward()
    assert bank._workspace.free is not None
    clone = copy.deepcopy(bank)
    assert clone._workspace.free is None
    torch.testing.assert_close(clone(torch.ones(1, 3)), bank(torch.ones(1, 3)))


def test_population_optimiser_equals_per_agent_modules_and_adams_and_is_deterministic():
    n = 3

    def population() -> Population:
        return Population(
            n, 3, 2, n, NetworkSizes((16, 8), (8,)), torch.Generator().manual_seed(9), critics=False
        )

    pop, again = population(), population()
    pop.policy.chunk_groups = again.policy.chunk_groups = 2  # the chunked path (the bank fits in one chunk)
    refs = reference_modules(pop.policy)
    agents = [torch.nn.ModuleList(refs[i * n : (i + 1) * n]) for i in range(n)]
    ref_opts = [torch.optim.Adam(a.parameters(), lr=1e-2) for a in agents]
    opts = [PopulationOptimiser(p, 1e-2, 1e-2, max_grad_norm=0.5) for p in (pop, again)]
    data = torch.Generator().manual_seed(10)
    for _ in range(4):
        x = torch.randn(20, 3, generator=data)
        scale = torch.tensor([1.0, 40.0, 0.1]).view(n, 1, 1, 1)  # agent 1 alone is clipped
        for p, opt in zip((pop, again), opts, strict=True):
            opt.step_actor((p.all_logits(x).pow(2) * scale).sum())
        for i, (agent, ref_opt) in enumerate(zip(agents, ref_opts, strict=True)):
            ref_opt.zero_grad()
            (torch.stack([m(x) for m in agent]).pow(2).sum() * scale[i, 0, 0, 0]).backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            ref_opt.step()
    for a, b in zip(pop.actor_parameters(), again.actor_parameters(), strict=True):
        assert torch.equal(a, b)  # same seed, same data: bitwise the same parameters
    for g in range(n * n):
        torch.testing.assert_close(pop.policy.weights[1][g], refs[g][2].weight.T, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(pop.policy.biases[2][g], refs[g][4].bias, rtol=1e-4, atol=1e-5)
