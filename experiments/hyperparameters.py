"""The papers' hyperparameter tables, and confide's choices where they are silent (decision 12).

| setting | AS/SS (C. Predation, Tables 1–2) | DPO (App. B, Table 2) | source |
| --- | --- | --- | --- |
| actor / critic hidden | (128, 64) / (128, 64), ReLU | (128, 128) / (128, 128), ReLU | tables |
| actor lr / critic lr | 1e-4 / 1e-4 | 5e-4 / 5e-4 | tables |
| γ, GAE λ | 0.99, 0.98 | 0.99, 0.98 (one shared target, decision 11) | AS/SS Table 1 |
| clip ε | 0.2 | none (DPO); 0.2 (IPPO) | tables |
| iterations per update | K = 3 | 15 epochs | tables |
| ρ | 0.1 | – | AS/SS Table 2 |
| d_target, δ, ω, β init | – | 0.01 (choice for C. Predation; the paper uses 0.01 for MPE), 1.5, 2, 0.01 | DPO |
| minibatches per iteration | 1 (full batch) | 1 | choice |
| episodes per update | ``train.batch`` (default 16) | same | choice (the papers: 1) |
| per-agent gradient clip | 0.5 | 0.5 | choice |
| entropy bonus | 0 | 0 | choice (no paper uses one) |
| VS, VPS, PS (baselines of AS/SS Sec. 5.2) | this column (SHARING_PPO, SHARING_SIZES) | – | decision 12 |
| VPS/PS consensus | one Metropolis–Hastings step per update, after the K iterations | – | choice (`core/consensus.py`) |
| VS actor advantage | GAE(γ, λ) of δ = r_i + γ V̄(s′) − V̄(s), V̄ = mean of own and received values | – | choice (`core/value_sharing.py`) |

Baselines in a comparison use the table of the paper whose figure it reproduces: IPPO on C. Predation
uses the AS/SS table; DPO always uses its own.
"""

from __future__ import annotations

import dataclasses

from confide.core.dpo import DpoConfig
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings
from confide.experiments.config import RunConfig

SHARING_PPO = PpoSettings(actor_lr=1e-4, critic_lr=1e-4, iterations=3)
DPO_PPO = PpoSettings(actor_lr=5e-4, critic_lr=5e-4, iterations=15)
SHARING_SIZES = NetworkSizes((128, 64), (128, 64))
DPO_SIZES = NetworkSizes((128, 128), (128, 128))
RHO = {"predation": 0.1, "matrix": 0.1}
D_TARGET = {"predation": 0.01, "matrix": 0.01}
DPO_FAMILY = ("dpo", "dpo_shared", "dpo_no_sqrt_kl", "dpo_no_kl", "ippo_kl")


def ppo_settings(config: RunConfig) -> PpoSettings:
    """The paper's PPO settings for this algorithm, with the config's overrides applied."""
    base = DPO_PPO if config.algo.name in DPO_FAMILY else SHARING_PPO
    overrides = {k: v for k, v in dataclasses.asdict(config.ppo).items() if v is not None}
    return dataclasses.replace(base, **overrides)


def network_sizes(config: RunConfig) -> NetworkSizes:
    return DPO_SIZES if config.algo.name in DPO_FAMILY else SHARING_SIZES


def rho(config: RunConfig) -> float:
    return config.algo.rho if config.algo.rho is not None else RHO[config.env.name]


def dpo_config(config: RunConfig) -> DpoConfig:
    name, algo = config.algo.name, config.algo
    d_target = algo.d_target if algo.d_target is not None else D_TARGET[config.env.name]
    variants = {
        "dpo": DpoConfig(d_target=d_target),
        "dpo_shared": DpoConfig(d_target=d_target, statistics="shared", one_over_n=False),
        "dpo_no_sqrt_kl": DpoConfig(d_target=d_target, sqrt_kl=False),
        "dpo_no_kl": DpoConfig(d_target=d_target, kl=False),
        "ippo_kl": DpoConfig(d_target=d_target, sqrt_kl=False, one_over_n=False, beta2_init=1.0),
    }
    cfg = variants[name]
    if algo.one_over_n is not None:
        cfg = dataclasses.replace(cfg, one_over_n=algo.one_over_n)
    return cfg
