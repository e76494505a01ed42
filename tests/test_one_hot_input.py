"""A bank on one-hot states looks its first layer up: the same function and gradients as the product."""

import dataclasses

import pytest
import torch

from confide.core.networks import StackedMLP
from confide.core.trainer import train
from confide.experiments import hyperparameters as hp
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig

S = 7


def _pair(groups: int, sizes: tuple[int, ...], chunk_groups: int | None):
    dense = StackedMLP(groups, sizes, torch.Generator().manual_seed(0), chunk_groups=chunk_groups)
    lookup = StackedMLP(
        groups, sizes, torch.Generator().manual_seed(0), chunk_groups=chunk_groups, one_hot_input=True
    )
    return dense, lookup


def _one_hot(*shape: int, seed: int = 1) -> torch.Tensor:
    index = torch.randint(0, S, shape, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.one_hot(index, S).float()


@pytest.mark.parametrize("chunk_groups", [None, 1, 2])  # one chunk (autograd ops), chunked function
@pytest.mark.parametrize("per_group", [False, True])
def test_lookup_equals_the_product_forward_bitwise_and_gradients_closely(chunk_groups, per_group):
    dense, lookup = _pair(4, (S, 16, 16, 3), chunk_groups)
    x = _one_hot(4, 50) if per_group else _one_hot(50)
    out_dense, out_lookup = dense(x), lookup(x)
    assert torch.equal(out_dense, out_lookup)
    weights = torch.randn(out_dense.shape, generator=torch.Generator().manual_seed(2))
    (out_dense * weights).sum().backward()
    (out_lookup * weights).sum().backward()
    for a, b in zip(dense.parameters(), lookup.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the rollout's path
        assert torch.equal(dense(x), lookup(x))


def test_lookup_with_a_group_index_and_a_slice():
    dense, lookup = _pair(6, (S, 8, 2), None)
    x = _one_hot(9)
    index = torch.tensor([4, 1])
    assert torch.equal(dense(x, index), lookup(x, index))
    assert torch.equal(dense(x, slice(None, None, 3)), lookup(x, slice(None, None, 3)))


@pytest.mark.parametrize(
    "bad", [torch.zeros(3, S), torch.full((3, S), 1.0 / S), 2 * torch.eye(S)[:3], torch.ones(3, S)]
)
def test_inputs_that_are_not_one_hot_are_refused(bad):
    _, lookup = _pair(2, (S, 8, 2), None)
    with pytest.raises(ValueError, match="one-hot"):
        lookup(bad)


def test_a_lookup_needs_a_hidden_layer():
    with pytest.raises(ValueError, match="hidden layer"):
        StackedMLP(2, (S, 2), torch.Generator(), one_hot_input=True)


def test_only_the_stochastic_games_networks_look_up():
    for env, expected in (("stochastic_game", True), ("predation", False), ("mpe_spread", False)):
        for algo in ("dpo", "iql", "as"):
            cfg = RunConfig(env=EnvConfig(name=env, agents=3), algo=AlgoConfig(name=algo))
            assert hp.network_sizes(cfg).one_hot_states is expected


def test_a_stochastic_game_run_is_deterministic_and_close_to_the_dense_model(monkeypatch):
    cfg = RunConfig(
        env=EnvConfig(name="stochastic_game", agents=3),
        algo=AlgoConfig(name="dpo"),
        train=TrainConfig(updates=3, batch=2, seed=3),
    )
    a, b = train(cfg), train(cfg)
    assert a.metrics == b.metrics
    sizes = hp.network_sizes
    monkeypatch.setattr(hp, "network_sizes", lambda c: dataclasses.replace(sizes(c), one_hot_states=False))
    dense = train(cfg)
    # The first rollout is the same (bitwise forward); later ones follow weights that differ by rounding.
    assert dense.metrics[0]["collective_return"] == a.metrics[0]["collective_return"]
    assert dense.metrics[0]["loss/critic"] == pytest.approx(a.metrics[0]["loss/critic"], rel=1e-5)
