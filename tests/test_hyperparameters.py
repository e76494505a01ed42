"""Which paper's table a run takes (experiments/hyperparameters.py)."""

from confide.experiments import hyperparameters as hp
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig


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
