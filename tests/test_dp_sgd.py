"""DP-SGD for PS and VPS (issue 7): per-sample, per-agent clipping against a slow reference, noise off
is the plain step, the accountant's wiring (Opacus' golden ε), determinism, resumption, config refusal."""

from __future__ import annotations

import copy

import pytest
import torch

from confide.cli import check_command
from confide.core.networks import StackedMLP
from confide.core.population import NetworkSizes, Population, PopulationOptimiser
from confide.core.trainer import train
from confide.experiments.config import ConfigError, config_from_dict
from confide.privacy.dp_sgd import DpSgd, DpSgdAccountant, DpSgdSettings, clip_and_sum_per_agent

N_AGENTS, HEADS, STATE, ACTIONS, M = 2, 2, 3, 2, 6


def _population(seed: int = 0) -> Population:
    sizes = NetworkSizes(actor_hidden=(4,), critic_hidden=(4,))
    return Population(N_AGENTS, STATE, ACTIONS, HEADS, sizes, torch.Generator().manual_seed(seed))


def _per_sample_loss(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` a smooth per-(agent, sample) loss of the ``[N·H, M, A]`` bank output."""
    per_head = (torch.log_softmax(logits, -1)[..., 0] * weights).view(N_AGENTS, HEADS, -1)
    return -per_head.sum(dim=1)


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, STATE, generator=g)
    w = torch.randn(N_AGENTS * HEADS, M, generator=g) * torch.tensor([1.0, 2.0, 5.0, 0.1, 3.0, 0.5])
    return x, w


def _reference_clipped_sum(
    bank: StackedMLP, x: torch.Tensor, w: torch.Tensor, clip: float
) -> list[torch.Tensor]:
    """The slow way: autograd per (sample, agent), clip by hand, sum."""
    params = bank.group_parameters()
    total = [torch.zeros_like(p) for p in params]
    for m in range(M):
        for i in range(N_AGENTS):
            loss = _per_sample_loss(bank(x[m : m + 1]), w[:, m : m + 1])[i, 0]
            grads = torch.autograd.grad(loss, params)
            norm = torch.sqrt(sum((g**2).sum() for g in grads))
            scale = min(1.0, clip / (float(norm) + 1e-6))
            for t, g in zip(total, grads, strict=True):
                t += scale * g
    return total


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_each_per_sample_gradient_is_clipped_per_agent_as_the_slow_reference():
    pop = _population()
    x, w = _inputs()
    opt = PopulationOptimiser(pop, 0.01, 0.01, max_grad_norm=1e9)
    dp = DpSgd(DpSgdSettings(clip=1.0), pop.policy, opt.actor, N_AGENTS, 1e9, minibatches=1)
    loss = _per_sample_loss(dp.forward(x), w).mean(dim=1).sum()
    loss.backward()
    samples = [p.grad_sample for p in dp.params]
    assert samples[0].shape == (M, N_AGENTS * HEADS, STATE, 4)
    norms = torch.stack([g.reshape(M, N_AGENTS, -1).norm(dim=-1) for g in samples], -1).norm(dim=-1)
    clip = float(norms.median())  # about half the (sample, agent) gradients are clipped
    assert (norms > clip * 1.01).sum() >= 3 and (norms < clip * 0.99).sum() >= 3
    summed = clip_and_sum_per_agent(samples, N_AGENTS, clip)
    reference = _reference_clipped_sum(pop.policy, x, w, clip)
    for got, want in zip(summed, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # A single sample: the clipped sum is that sample's gradient scaled to norm ≤ C, per agent.
    one = clip_and_sum_per_agent([g[:1] for g in samples], N_AGENTS, clip)
    agent_norms = torch.stack([s.reshape(N_AGENTS, -1).norm(dim=-1) for s in one], -1).norm(dim=-1)
    assert (agent_norms <= clip * (1 + 1e-5)).all()
    torch.testing.assert_close(agent_norms, norms[0].clamp(max=clip), rtol=1e-5, atol=1e-7)


def test_noise_off_and_a_loose_bound_is_the_plain_step():
    x, w = _inputs()
    plain_pop = _population()
    dp_pop = copy.deepcopy(plain_pop)
    plain_opt = PopulationOptimiser(plain_pop, 0.01, 0.01, max_grad_norm=0.5)
    dp_opt = PopulationOptimiser(dp_pop, 0.01, 0.01, max_grad_norm=0.5)
    dp = DpSgd(DpSgdSettings(clip=1e9), dp_pop.policy, dp_opt.actor, N_AGENTS, 0.5, minibatches=1)
    for _ in range(3):
        plain_norms = plain_opt.step_actor(_per_sample_loss(plain_pop.policy(x), w).mean(dim=1).sum())
        dp_norms = dp.step(_per_sample_loss(dp.forward(x), w).mean(dim=1).sum())
        torch.testing.assert_close(dp_norms, plain_norms, rtol=1e-5, atol=1e-7)
    for a, b in zip(plain_pop.actor_parameters(), dp_pop.actor_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_noise_comes_from_the_run_seed_and_survives_a_checkpoint():
    x, w = _inputs()

    def run(seed: int, steps: int, state: dict | None = None) -> tuple[list[torch.Tensor], dict]:
        pop = _population()
        opt = PopulationOptimiser(pop, 0.01, 0.01, max_grad_norm=1e9)
        dp = DpSgd(DpSgdSettings(1.0, 2.0, seed=seed), pop.policy, opt.actor, N_AGENTS, 1e9, minibatches=1)
        if state is not None:
            pop.load_state_dict(state["pop"])
            opt.load_state_dict(state["opt"])
            dp.load_state_dict(state["dp"])
        for _ in range(steps):
            dp.step(_per_sample_loss(dp.forward(x), w).mean(dim=1).sum())
        saved = {"pop": copy.deepcopy(pop.state_dict()), "opt": copy.deepcopy(opt.state_dict())}
        return [p.detach().clone() for p in pop.actor_parameters()], {**saved, "dp": dp.state_dict()}

    a, _ = run(7, 2)
    b, _ = run(7, 2)
    c, _ = run(8, 2)
    _, half = run(7, 1)
    resumed, state = run(7, 1, half)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(a, resumed, strict=True))
    assert state["dp"]["accountant"]["steps"] == 2


def test_accountant_gives_opacus_golden_epsilon_and_an_honest_reward_level_one():
    """σ = 1.5, q = 0.04, 2,250 steps, δ = 1e-5 → ε ≈ 7.329 (Opacus' RDP golden value)."""
    accountant = DpSgdAccountant(1.5, 0.04)
    for _ in range(2250):
        accountant.step(25)
    assert accountant.epsilon(1e-5) == pytest.approx(7.329, abs=1e-3)
    assert accountant.epsilon_reward(1e-5) > 100 * accountant.epsilon(1e-5)  # group of 25 samples
    assert DpSgdAccountant(0.0, 1.0).epsilon(1e-5) == 0.0  # no step, nothing spent


@pytest.mark.parametrize("algo", ["ps", "vps"])
def test_training_reports_each_agents_epsilon_and_is_deterministic(algo):
    data = {
        "env": {"name": "predation", "agents": 2},
        "algo": {"name": algo, "dp_sgd_clip": 1.0, "dp_sgd_noise": 1.0},
        "ppo": {"minibatches": 2},
        "train": {"updates": 2, "batch": 1, "seed": 3, "progress": False, "checkpoint_every": 0},
    }
    config = config_from_dict(data)
    first, again = train(config), train(config)
    assert first.metrics == again.metrics and first.transcript_digest == again.transcript_digest
    report = first.summary["dp_sgd"]
    steps = 2 * 3 * 2  # updates × PPO iterations (K = 3) × minibatches
    assert report["steps"] == steps and report["sample_rate"] == 0.5 and report["minibatch_size"] == 15
    want = DpSgdAccountant(1.0, 0.5)
    for _ in range(steps):
        want.step(15)
    assert report["privacy"] == {
        str(i): {"epsilon": want.epsilon(1e-5), "epsilon_reward": want.epsilon_reward(1e-5), "delta": 1e-5}
        for i in range(2)
    }
    other = train(config_from_dict({**data, "train": {**data["train"], "seed": 4}}))
    assert other.metrics != first.metrics
    if algo == "ps":  # off by default: no report
        assert "dp_sgd" not in train(config_from_dict({**data, "algo": {"name": algo}})).summary


def test_dp_sgd_is_refused_for_other_algorithms_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="ps, vps only, not as"):
        config_from_dict({"algo": {"name": "as", "dp_sgd_clip": 1.0}})
    with pytest.raises(ConfigError, match="needs algo.dp_sgd_clip"):
        config_from_dict({"algo": {"name": "ps", "dp_sgd_noise": 1.0}})
    with pytest.raises(ConfigError, match="dp_sgd_clip must be > 0"):
        config_from_dict({"algo": {"name": "vps", "dp_sgd_clip": 0.0}})
    bad = tmp_path / "dp.json"
    bad.write_text('{"algo": {"dp_sgd_clip": 1.0, "dp_sgd_noise": 1.0}}')
    assert check_command(["train", "--algo", "ss", "--config", str(bad)]) == 2
    assert check_command(["train", "--algo", "ps", "--config", str(bad)]) == 0
