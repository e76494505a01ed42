"""The papers' hyperparameter tables, and confide's choices where they are silent (decision 12).

| setting | AS/SS (C. Predation, Tables 1–2) | DPO (App. B, Table 2) | source |
| --- | --- | --- | --- |
| actor / critic hidden | (128, 64) / (128, 64), ReLU; per environment: ``AS_TABLE``/``SS_TABLE`` | (128, 128) / (128, 128), ReLU | tables |
| actor lr / critic lr | 1e-4 / 1e-4; actor lr per environment | 5e-4 / 5e-4 | tables |
| γ, GAE λ | 0.99, 0.98 | 0.99, 0.98 (one shared target, decision 11) | AS/SS Table 1 |
| clip ε | 0.2 | none (DPO); 0.2 (IPPO) | tables |
| iterations per update | K = 3 | 15 epochs | tables |
| ρ | 0.1; per environment (Cleanup 1e3, C. Navigation 1e4 AS / 1 SS, Exchange 1e4) | – | AS/SS Table 2 |
| d_target, δ, ω, β init | – | 0.1 stochastic game, 0.01 MPE (App. B); 0.01 elsewhere (choice); δ 1.5, ω 2 (Eq. 21, ``algo.delta``/``algo.omega``); β 0.01 | DPO |
| minibatches per iteration | 1 (full batch) | 1 | choice |
| episodes per update | ``train.batch`` (default 16) | same | choice (the papers: 1) |
| per-agent gradient clip | 0.5 | 0.5 | choice |
| entropy bonus | 0 | 0 | choice (no paper uses one) |
| advantage normalisation | none (κ̂ = mean abs Â is defined on raw advantages) | standardised per agent and update batch, (Â − mean)/(std + 1e-5) | DPO App. B: its IPPO (and DPO) code is MAPPO's, whose train() always standardises; β init 0.01 presumes unit-scale Â |
| VS, VPS, PS (baselines of AS/SS Sec. 5.2) | this column (SHARING_PPO, SHARING_SIZES) | – | decision 12 |
| VPS/PS consensus | one Metropolis–Hastings step per update, after the K iterations | – | choice (`core/consensus.py`) |
| CL | central critic of Σ_i r_i (critic_hidden, critic lr); actors take the central advantages | – | choice (`core/centralized_learning.py`) |
| IMR bonus ξ | per-step cost of cooperating alone: C. Predation 2N (`ss`), 4 (`as`); matrix games: payoff range; Cleanup, Harvest 1 (an apple); Exchange 5 (the opener's cost) | – | choice (`core/intrinsic_moral_reward.py`) |
| centralised joint PPO | the AS/SS table; one joint softmax, ≤ 64 joint actions | – | AS Sec. 5.3 |
| IQL (DQN) | – | lr 5e-4, buffer 50k, batch 128, replay ratio 4, hard target copy every 100 steps, ε 1 → 0.05 over half the run, Huber, clip 10; DPO's network sizes | choice (DPO lists none) |
| VS actor advantage | GAE(γ, λ) of δ = r_i + γ V̄(s′) − V̄(s), V̄ = mean of own and received values | – | choice (`core/value_sharing.py`) |

SS uses SS's column, every other sharing algorithm and baseline AS's (the two differ only for Cleanup's
and C. Navigation's actor learning rate and C. Navigation's ρ); environments neither paper runs (matrix,
stochastic game, MPE) take the C. Predation column. The DPO family always uses DPO's own table, and so
does IPPO on the DPO paper's environments (stochastic game, MPE): DPO App. B gives DPO and IPPO the same
networks and base hyperparameters "for a fair comparison".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from confide.core.dpo import DpoConfig
from confide.core.independent_q_learning import IqlSettings
from confide.core.population import NetworkSizes
from confide.core.ppo import PpoSettings
from confide.envs import has_one_hot_state
from confide.envs.matrix_games import MATRIX_GAMES
from confide.experiments.config import DPO_FAMILY, RunConfig

SHARING_PPO = PpoSettings(actor_lr=1e-4, critic_lr=1e-4, iterations=3)
DPO_PPO = PpoSettings(actor_lr=5e-4, critic_lr=5e-4, iterations=15, standardise_advantages=True)
SHARING_SIZES = NetworkSizes((128, 64), (128, 64))
DPO_SIZES = NetworkSizes((128, 128), (128, 128))
# DPO App. B: "the network architectures and base hyperparameters of DPO and IPPO are the same for all
# the tasks": on the DPO paper's environments IPPO takes DPO's settings. Elsewhere IPPO is the AS/SS
# papers' independent PPO (AS Fig. 6) and takes their table.
DPO_ENVIRONMENTS = ("stochastic_game", "mpe_spread", "mpe_line", "mpe_circle")
IQL = IqlSettings()
IMR_ENVIRONMENTS = ("predation", "matrix", "cleanup", "harvest", "exchange")  # declare a cooperative act


@dataclass(frozen=True)
class SharingTable:
    """One column of AS/SS Table 2: the settings that differ between environments."""

    actor_lr: float
    hidden: tuple[int, ...]
    rho: float


# AS Table 2 (``000_…`` App. A.3) and SS Table 2 (``001_…`` App. A.5); SS has no Exchange column. The
# papers run neither the matrix games, the stochastic game nor MPE: those use the C. Predation column.
AS_TABLE = {
    "cleanup": SharingTable(5e-5, (1024, 256), 1e3),
    "harvest": SharingTable(5e-5, (1024, 256), 0.1),
    "predation": SharingTable(1e-4, (128, 64), 0.1),
    "navigation": SharingTable(5e-5, (128, 64), 1e4),
    "exchange": SharingTable(5e-5, (128, 64), 1e4),
}
SS_TABLE = {
    **AS_TABLE,
    "cleanup": SharingTable(1e-5, (1024, 256), 1e3),
    "navigation": SharingTable(1e-5, (128, 64), 1.0),
}
# DPO App. B: d_target 0.1 for the stochastic game, 0.01 for MPE; 0.01 elsewhere is confide's choice.
D_TARGET = {"stochastic_game": 0.1, "mpe_spread": 0.01, "mpe_line": 0.01, "mpe_circle": 0.01}
D_TARGET_DEFAULT = 0.01


def sharing_table(config: RunConfig) -> SharingTable:
    """SS's column for SS, AS's for everything else (the baselines of AS's figures)."""
    table = SS_TABLE if config.algo.name == "ss" else AS_TABLE
    return table.get(config.env.name, AS_TABLE["predation"])


def uses_dpo_settings(config: RunConfig) -> bool:
    """DPO's variants always; IPPO on the DPO paper's environments (its fair-comparison rule)."""
    ippo = config.algo.name in ("ippo", "independent_ppo")
    return config.algo.name in DPO_FAMILY or (ippo and config.env.name in DPO_ENVIRONMENTS)


def ppo_settings(config: RunConfig) -> PpoSettings:
    """The paper's PPO settings for this algorithm and environment, with the config's overrides applied."""
    if uses_dpo_settings(config):
        base = DPO_PPO
    else:
        base = dataclasses.replace(SHARING_PPO, actor_lr=sharing_table(config).actor_lr)
    overrides = {k: v for k, v in dataclasses.asdict(config.ppo).items() if v is not None}
    return dataclasses.replace(base, **overrides)


def network_sizes(config: RunConfig) -> NetworkSizes:
    """The paper's widths; a one-hot state (the stochastic game) makes every first layer a lookup."""
    one_hot = has_one_hot_state(config.env.name)
    if uses_dpo_settings(config) or config.algo.name == "iql":
        return dataclasses.replace(DPO_SIZES, one_hot_states=one_hot)
    hidden = sharing_table(config).hidden
    shared_trunk = config.algo.network == "shared_trunk"
    return NetworkSizes(hidden, hidden, shared_trunk=shared_trunk, one_hot_states=one_hot)


# ξ where it is a constant: Cleanup — one apple's worth per cleaning act (cleaning forgoes eating);
# Harvest — one apple per apple spared; Exchange — the opener's cost of 5.
IMR_BONUS = {"cleanup": 1.0, "harvest": 1.0, "exchange": 5.0}


def imr_bonus(config: RunConfig) -> float:
    """IMR's ξ: the per-step cost of cooperating alone, unless the config sets it."""
    if config.algo.imr_bonus is not None:
        return config.algo.imr_bonus
    if config.env.name == "predation":
        return 2.0 * config.env.agents if config.env.scheme == "ss" else 4.0
    if config.env.name == "matrix":  # the payoff range offsets any temptation to leave the optimum
        payoff = MATRIX_GAMES[config.env.game - 1].payoff
        return float(payoff.max() - payoff.min())
    if config.env.name in IMR_BONUS:
        return IMR_BONUS[config.env.name]
    raise ValueError(f"no IMR bonus is defined for {config.env.name!r}")


def rho(config: RunConfig) -> float:
    return config.algo.rho if config.algo.rho is not None else sharing_table(config).rho


def dpo_config(config: RunConfig) -> DpoConfig:
    name, algo = config.algo.name, config.algo
    d_target = algo.d_target if algo.d_target is not None else D_TARGET.get(config.env.name, D_TARGET_DEFAULT)
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
    eq21 = {k: getattr(algo, k) for k in ("delta", "omega") if getattr(algo, k) is not None}
    return dataclasses.replace(cfg, **eq21)
