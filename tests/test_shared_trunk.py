"""The shared-trunk variant (AS/SS Sec. 6): same interface, its own model, agents still independent."""

import pytest
import torch

from confide.core.networks import SharedTrunkHeads, StackedMLP, reference_modules
from confide.core.population import NetworkSizes, Population, PopulationOptimiser

N, S, A = 4, 3, 2
SIZES = NetworkSizes((16, 8), (8,), shared_trunk=True)


def _population(seed: int = 0, sizes: NetworkSizes = SIZES) -> Population:
    return Population(N, S, A, N, sizes, torch.Generator().manual_seed(seed))


def test_logits_have_the_shapes_of_separate_heads():
    pop, separate = _population(), _population(sizes=NetworkSizes((16, 8), (8,)))
    assert isinstance(pop.policy, SharedTrunkHeads) and isinstance(separate.policy, StackedMLP)
    states = torch.randn(7, S, generator=torch.Generator().manual_seed(1))
    assert pop.all_logits(states).shape == separate.all_logits(states).shape == (N, N, 7, A)
    assert pop.own_logits(states).shape == separate.own_logits(states).shape == (N, 7, A)
    assert pop.values(states).shape == (N, 7)


def test_each_head_is_its_agents_trunk_followed_by_its_own_linear_layer():
    pop = _population()
    states = torch.randn(9, S, generator=torch.Generator().manual_seed(2))
    trunks = reference_modules(pop.policy.trunk)  # Linear-ReLU-Linear-ReLU per agent
    logits = pop.all_logits(states)
    for i in range(N):
        features = trunks[i](states)
        for h in range(N):
            g = i * N + h
            expected = features @ pop.policy.head_weight[g] + pop.policy.head_bias[g]
            torch.testing.assert_close(logits[i, h], expected, rtol=1e-5, atol=1e-6)
    own = pop.own_logits(states)
    for i in range(N):
        torch.testing.assert_close(own[i], logits[i, i], rtol=1e-6, atol=1e-6)
    per_group = pop.policy(states.expand(N * N, *states.shape))  # one input per group: same numbers
    torch.testing.assert_close(per_group.view(N, N, 9, A), logits, rtol=1e-5, atol=1e-6)


def test_one_agents_loss_moves_only_that_agents_trunk_and_heads():
    pop = _population(3)
    opt = PopulationOptimiser(pop, 1e-2, 1e-2, max_grad_norm=0.5)
    before = [p.detach().clone() for p in pop.actor_parameters()]
    assert len(before) == 6  # trunk weights and biases [N, ...], head weight and bias [N·N, ...]
    states = torch.randn(10, S, generator=torch.Generator().manual_seed(4))
    opt.step_actor(pop.all_logits(states)[1].pow(2).sum())  # only agent 1's loss
    for b, p in zip(before, pop.actor_parameters(), strict=True):
        changed = (b != p.detach()).reshape(N, -1).any(dim=1)
        assert changed.tolist() == [False, True, False, False]


def test_gradients_of_every_agent_are_its_own_gradients():
    pop = _population(5)
    states = torch.randn(12, S, generator=torch.Generator().manual_seed(6))
    weights = torch.randn(N, N, 12, A, generator=torch.Generator().manual_seed(7))
    per_agent = (pop.all_logits(states) * weights).sum(dim=(1, 2, 3))  # [N]
    together = torch.autograd.grad(per_agent.sum(), pop.actor_parameters())
    for i in range(N):
        alone = torch.autograd.grad((pop.all_logits(states)[i] * weights[i]).sum(), pop.actor_parameters())
        for t, a in zip(together, alone, strict=True):
            torch.testing.assert_close(t.reshape(N, -1)[i], a.reshape(N, -1)[i], rtol=1e-5, atol=1e-6)
            assert a.reshape(N, -1)[[j for j in range(N) if j != i]].abs().sum() == 0


def test_one_head_ignores_the_option_and_a_trunk_needs_a_hidden_layer():
    pop = Population(N, S, A, 1, SIZES, torch.Generator().manual_seed(8))
    assert isinstance(pop.policy, StackedMLP)
    with pytest.raises(ValueError, match="hidden layer"):
        NetworkSizes((), (8,), shared_trunk=True)
