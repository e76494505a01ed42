"""Central DP for PS/VPS consensus in the federation: Flower's server-side fixed-clipping wrapper over
FedAvg, with Opacus' RDP accountant behind Flower's accountant protocol."""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")

import numpy as np
import pytest
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from opacus.accountants import RDPAccountant

from confide.cli import check_command
from confide.core.consensus import flat_parameters
from confide.experiments.config import ConfigError, config_from_dict
from confide.federation.central_dp import CentralDpAverager, CentralDpSettings, OpacusAccountant
from confide.federation.client import AgentNode
from confide.federation.grid import InProcessGrid
from confide.federation.runner import check_federable, federate

N = 3


def _config(updates: int = 1):
    return config_from_dict(
        {
            "env": {"agents": N},
            "algo": {"name": "ps"},
            "topology": {"kind": "complete"},
            "train": {"updates": updates, "batch": 2, "seed": 11},
        }
    )


def _privacy(max_epsilon=None) -> PrivacyConfig:
    return PrivacyConfig(
        1e-5, N, NeighboringRelation.ADD_OR_REMOVE_ONE, SamplingMethod.NO_AMPLIFICATION, max_epsilon
    )


def test_opacus_accountant_speaks_flowers_protocol_and_matches_opacus():
    acc = OpacusAccountant(_privacy(max_epsilon=50.0))
    assert acc.get_epsilon(1e-5) == 0.0 and acc.num_releases == 0
    acc.compose(GaussianPrivacyEvent(1.0, N, N), count=3)
    direct = RDPAccountant()
    for _ in range(3):
        direct.step(noise_multiplier=1.0, sample_rate=1.0)
    assert acc.num_releases == 3
    assert acc.get_epsilon(1e-5) == pytest.approx(direct.get_epsilon(1e-5), rel=1e-12)
    spent = acc.get_privacy_spent()
    assert spent.epsilon == pytest.approx(direct.get_epsilon(1e-5)) and spent.num_releases == 3
    eps = acc.get_epsilon(1e-5)
    assert acc.get_delta(eps) == pytest.approx(1e-5, rel=1e-3)  # get_delta inverts get_epsilon
    assert acc.would_exceed(GaussianPrivacyEvent(1.0, N, N), count=500)  # ε grows past 50
    assert not acc.would_exceed(GaussianPrivacyEvent(1.0, N, N))
    state = acc.state_dict()
    other = OpacusAccountant(_privacy())
    other.load_state_dict(state)
    assert other.get_epsilon(1e-5) == acc.get_epsilon(1e-5)


def test_the_release_clips_each_update_and_adds_the_wrappers_noise():
    dp = CentralDpAverager(_config(), CentralDpSettings(noise_multiplier=1e-9, clipping_norm=0.5))
    ref = np.zeros(4)
    dp.reference["policy_params"] = ref
    vectors = {1000: np.array([3.0, 0, 0, 0], np.float32), 1001: np.array([0, 0.1, 0, 0], np.float32)}
    with InProcessGrid([], {}):  # Flower's run identity, which messages need (the runtime sets it)
        mean = dp.release("policy_params", 0, vectors)
    # x1 − ref has norm 3 → clipped to 0.5; x2's norm 0.1 is kept; FedAvg weight 1 each; noise ~1e-9
    assert np.allclose(mean, [0.25, 0.05, 0, 0], atol=1e-6)
    assert dp.clipped == 1 and dp.accountant.num_releases == 1 and dp.zero_updates == 0
    assert np.array_equal(dp.reference["policy_params"], mean)  # the next round's reference
    noisy = CentralDpAverager(_config(), CentralDpSettings(noise_multiplier=2.0, clipping_norm=0.5))
    noisy.reference["policy_params"] = np.zeros(20_000)
    same = {1000 + k: np.zeros(20_000, np.float32) for k in range(2)}
    with InProcessGrid([], {}):
        std = np.std(noisy.release("policy_params", 0, same))
    assert std == pytest.approx(2.0 * 0.5 / 2, rel=0.05)  # σ·C/k, Flower's compute_stdv
    assert noisy.zero_updates == 2  # both updates were exactly zero: moved off zero, not a crash


def test_federated_dp_release_with_negligible_noise_is_the_plain_mean():
    """Clipping far above every update and σ·C/k ≈ 3e-7: the DP release is the plain mean within 1e-5,
    and the summary reports the accountant's ε for one release."""
    settings = CentralDpSettings(noise_multiplier=1e-9, clipping_norm=1e3)
    nodes = [AgentNode() for _ in range(N)]
    result = federate(_config(), None, nodes=nodes, central_dp=settings)
    plain_nodes = [AgentNode() for _ in range(N)]
    federate(_config(), None, nodes=plain_nodes)  # MH on the complete graph = the plain mean
    for k in range(N):
        got = flat_parameters(nodes[k].worker.learner.population.actor_parameters(), N)[k]
        want = flat_parameters(plain_nodes[k].worker.learner.population.actor_parameters(), N)[k]
        assert np.abs(got - want).max() < 1e-5
    dp = result.summary["federation"]["central_dp"]
    direct = RDPAccountant()
    direct.step(noise_multiplier=1e-9, sample_rate=1.0)
    assert dp["releases"] == 1 and dp["rounds"] == 1 and dp["halted"] == 0
    assert dp["epsilon"] == pytest.approx(direct.get_epsilon(1e-5))
    assert result.summary["bytes_sent"].get("policy_params", 0) == 0  # nothing went through the channel


def test_central_dp_refusals_are_one_line_exit_2():
    with pytest.raises(ConfigError, match="client-side clipping"):
        check_federable(_config(), "inprocess", secagg=True, central_dp=True)
    base = ["federate", "--algo", "ps", "--agents", "3", "--topology", "complete"]
    assert check_command([*base, "--central-dp", "1.0", "1.0"]) == 0
    assert check_command([*base, "--central-dp", "0", "1.0"]) == 2
    assert check_command([*base, "--central-dp", "1.0", "1.0", "--secagg"]) == 2
    assert check_command(["federate", "--algo", "ss", "--agents", "3", "--central-dp", "1", "1"]) == 2
