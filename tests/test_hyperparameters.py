"""Which paper's table a run takes (experiments/hyperparameters.py)."""

import pytest
import torch

from confide.core.population import NetworkSizes, Population
from confide.core.ppo import PpoSettings, advantages_and_targets
from confide.core.rollout import Rollout
from confide.experiments import hyperparameters as hp
from confide.experiments.config import AlgoConfig, ConfigError, EnvConfig, PpoConfig, RunConfig, TrainConfig


def _config(algo: str, env: str) -> RunConfig:
    return RunConfig(env=EnvConfig(name=env), algo=AlgoConfig(name=algo))


def test_ippo_takes_dpo_settings_on_the_dpo_papers_environments():
    """DPO App. B: DPO and IPPO share networks and base hyperparameters there (a fair comparison)."""
    for env in hp.DPO_ENVIRONMENTS:
        ippo, dpo = _config("ippo", env), _config("dpo", env)
        assert hp.ppo_settings(ippo) == hp.ppo_settings(dpo) == hp.DPO_PPO
        sizes = hp.network_sizes(dpo)
        assert hp.network_sizes(ippo) == sizes
        assert (sizes.actor_hidden, sizes.critic_hidden) == (
            hp.DPO_SIZES.actor_hidden,
            hp.DPO_SIZES.critic_hidden,
        )


def test_independent_ppo_keeps_the_as_table_on_c_predation():
    """AS Fig. 6's independent PPO is compared with AS under AS's table."""
    for name in ("ippo", "independent_ppo"):
        config = _config(name, "predation")
        assert hp.ppo_settings(config) == hp.ppo_settings(_config("as", "predation"))
        assert hp.ppo_settings(config).iterations == 3 and hp.ppo_settings(config).actor_lr == 1e-4
        assert hp.network_sizes(config) == hp.SHARING_SIZES


def test_dpo_and_its_ippo_standardise_advantages_the_as_ss_table_does_not():
    for env in hp.DPO_ENVIRONMENTS:
        for algo in ("dpo", "ippo", "ippo_kl", "dpo_no_kl"):
            assert hp.ppo_settings(_config(algo, env)).standardise_advantages
    for algo in ("as", "ss", "ippo", "vps"):
        assert not hp.ppo_settings(_config(algo, "predation")).standardise_advantages
    raw = RunConfig(
        env=EnvConfig(name="stochastic_game"),
        algo=AlgoConfig(name="dpo"),
        ppo=PpoConfig(standardise_advantages=False),
    )
    assert not hp.ppo_settings(raw).standardise_advantages  # the raw variant on request


def test_standardised_advantages_are_per_agent_mean_zero_std_one():
    torch.manual_seed(0)
    pop = Population(3, 4, 2, 1, NetworkSizes((8,), (8,)), torch.Generator().manual_seed(1))
    T, B = 5, 2
    rewards = torch.randn(T, B, 3) * torch.tensor([1.0, 10.0, 100.0])  # very different scales per agent
    rollout = Rollout(
        states=torch.randn(T, B, 4),
        next_states=torch.randn(T, B, 4),
        actions=torch.zeros(T, B, 3, dtype=torch.long),
        log_probs=torch.zeros(T, B, 3),
        rewards=rewards,
        ends=torch.zeros(T, B, dtype=torch.bool),
        positions=None,
        cooperative=None,
    )
    raw, targets = advantages_and_targets(pop, rollout, PpoSettings())
    std, std_targets = advantages_and_targets(pop, rollout, PpoSettings(standardise_advantages=True))
    torch.testing.assert_close(std_targets, targets)  # critic targets are untouched
    torch.testing.assert_close(std.mean(dim=0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std.std(dim=0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    expected = (raw - raw.mean(dim=0)) / (raw.std(dim=0, unbiased=False) + 1e-5)
    torch.testing.assert_close(std, expected)


@pytest.mark.parametrize("algo", ["cl", "centralized_ppo", "vs", "iql"])
def test_standardising_is_refused_where_advantages_are_not_each_agents_own_gae(algo):
    with pytest.raises(ConfigError, match="standardise_advantages"):
        RunConfig(algo=AlgoConfig(name=algo), ppo=PpoConfig(standardise_advantages=True))


@pytest.mark.parametrize(
    "algo,field,value,reason",
    [
        ("as", "entropy_coef", 0.01, "no entropy term"),
        ("ss", "entropy_coef", 0.01, "no entropy term"),
        ("dpo", "clip_eps", 0.2, "does not clip"),
        ("ippo_kl", "clip_eps", 0.3, "does not clip"),
    ],
)
def test_a_ppo_override_the_algorithm_would_ignore_is_refused(algo, field, value, reason):
    with pytest.raises(ConfigError, match=f"ppo.{field} has no effect on {algo}: .*{reason}"):
        RunConfig(algo=AlgoConfig(name=algo), ppo=PpoConfig(**{field: value}))


@pytest.mark.parametrize("algo,field", [("ippo", "entropy_coef"), ("dpo", "entropy_coef"), ("iql", "gamma")])
def test_ppo_overrides_the_algorithm_uses_are_accepted(algo, field):
    RunConfig(algo=AlgoConfig(name=algo), ppo=PpoConfig(**{field: 0.5}))


def test_a_neutral_value_of_an_unused_field_is_accepted():
    RunConfig(algo=AlgoConfig(name="as"), ppo=PpoConfig(entropy_coef=0.0))  # what AS does anyway


def test_dpo_honours_the_entropy_bonus():
    """A large bonus keeps the policies nearer uniform than none does, from the same seed."""
    from confide.core.trainer import _one_update, make_run_env, start_run

    entropies = {}
    for coef in (None, 1.0):
        config = RunConfig(
            env=EnvConfig(name="stochastic_game", agents=3, reward="team"),
            algo=AlgoConfig(name="dpo"),
            ppo=PpoConfig(entropy_coef=coef),
            train=TrainConfig(updates=4, batch=2, seed=5),
        )
        env = make_run_env(config)
        run = start_run(config, env)
        for update in range(4):
            _one_update(run, env, update)
        pop = run.learner.population
        with torch.no_grad():
            logp = torch.log_softmax(pop.own_logits(torch.eye(env.state_dim)), dim=-1)
        entropies[coef] = float(-(logp.exp() * logp).sum(-1).mean())
    assert entropies[1.0] > entropies[None]


def test_dpo_and_ippo_log_their_policies_entropy_and_step_size():
    import math

    from confide.core.trainer import train

    for algo, kl_key in (("dpo", "kl/mean"), ("ippo", "kl/approx")):
        config = RunConfig(
            env=EnvConfig(name="stochastic_game", agents=3, reward="team"),
            algo=AlgoConfig(name=algo),
            train=TrainConfig(updates=2, batch=2, seed=1),
        )
        for row in train(config).metrics:
            assert 0 < row["entropy/mean"] <= math.log(5) + 1e-6  # five actions
            assert row[kl_key] >= 0
