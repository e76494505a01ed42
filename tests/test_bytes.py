"""Bytes on the channel match a hand count; DPO and IPPO send nothing; shared-statistics DPO sends
exactly two scalars per agent to every other agent per update."""

import pytest

from confide.channels import array_wire_bytes
from confide.core.trainer import train
from confide.experiments.config import (
    AlgoConfig,
    EnvConfig,
    PpoConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
)

N, B, T, A, K = 3, 2, 30, 2, 3


def _config(algo: str, updates: int = 1, **ppo) -> RunConfig:
    return RunConfig(
        env=EnvConfig(name="predation", agents=N),
        algo=AlgoConfig(name=algo),
        ppo=PpoConfig(**ppo),
        topology=TopologyConfig(kind="complete"),
        train=TrainConfig(updates=updates, batch=B, seed=0),
    )


def _distribution_message_bytes(samples: int) -> int:
    # payload: u16 array count + one array "probs" of shape [samples, A] float32
    return 2 + array_wire_bytes("probs", (samples, A), 4)


@pytest.mark.parametrize("algo,kind", [("as", "anticipation"), ("ss", "suggestion")])
def test_one_update_on_a_complete_graph_matches_hand_count(algo, kind):
    summary = train(_config(algo)).summary
    per_message = _distribution_message_bytes(T * B)
    assert per_message == 2 + 1 + 5 + 1 + 1 + 8 + 4 * T * B * A == 498
    # K iterations × N(N−1) directed links × one message of each kind
    expected = K * N * (N - 1) * per_message
    assert summary["bytes_sent"] == {"total": 2 * expected, "policy": expected, kind: expected}
    assert summary["bytes_per_agent_per_update"] == 2 * expected / N


@pytest.mark.parametrize("algo", ["ippo", "dpo", "dpo_no_kl", "ippo_kl"])
def test_independent_learners_send_nothing(algo):
    summary = train(_config(algo, iterations=2)).summary
    assert summary["bytes_sent"] == {"total": 0}


def test_shared_statistics_dpo_sends_two_scalars_to_every_other_agent_each_update():
    updates = 2
    summary = train(_config("dpo_shared", updates=updates, iterations=2)).summary
    per_message = 2 + array_wire_bytes("kl", (2,), 4)  # two float32 scalars
    assert summary["bytes_sent"] == {
        "total": updates * N * (N - 1) * per_message,
        "kl_stats": updates * N * (N - 1) * per_message,
    }


def test_communication_period_silences_gap_updates():
    cfg = _config("as", updates=2)
    cfg = RunConfig(cfg.env, cfg.algo, cfg.ppo, TopologyConfig(kind="complete", period=2), cfg.train)
    result = train(cfg)
    assert result.metrics[0]["bytes_sent"] == 2 * K * N * (N - 1) * _distribution_message_bytes(T * B)
    assert result.metrics[1]["bytes_sent"] == 0
