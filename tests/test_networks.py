"""Batched networks equal a per-module reference; agents' parameters are independent."""

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
