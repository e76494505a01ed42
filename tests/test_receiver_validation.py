"""Receivers reject malformed distributions from peers, count why, and keep learning."""

import numpy as np
import pytest
import torch

from confide.channels import IdealChannel, Inbox, Message
from confide.core.comms import Comms, Neighbourhood, gather_distributions
from confide.core.trainer import train
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TopologyConfig, TrainConfig

M, A = 4, 2
STATIC = Neighbourhood(np.array([[False, True, True], [True, False, True], [True, True, False]]))
GOOD = np.full((M, A), 0.5, dtype=np.float32)


@pytest.mark.parametrize(
    "message,reason",
    [
        (Message(1, 0, "policy", 0, {"probs": np.full((M, A), np.nan, np.float32)}), "non_finite"),
        (Message(1, 0, "policy", 0, {"probs": np.full((M, A), 0.7, np.float32)}), "not_a_distribution"),
        (
            Message(1, 0, "policy", 0, {"probs": np.array([[1.5, -0.5]] * M, np.float32)}),
            "not_a_distribution",
        ),
        (Message(1, 0, "policy", 0, {"probs": np.full((M + 1, A), 0.5, np.float32)}), "bad_shape"),
        (Message(1, 0, "policy", 0, {"probs": np.full((M, A), 1, np.int32)}), "bad_shape"),
        (Message(1, 0, "policy", 0, {"probs": GOOD, "extra": GOOD}), "bad_keys"),
        (Message(1, 0, "policy", 0, {"probs": GOOD, "index": np.arange(M, dtype=np.int32)}), "bad_index"),
        (Message(0, 0, "policy", 0, {"probs": GOOD}), "bad_address"),
        (Message(7, 0, "policy", 0, {"probs": GOOD}), "bad_address"),
    ],
)
def test_malformed_distribution_is_rejected_with_its_reason(message, reason):
    comms = Comms(IdealChannel(), 3)
    probs, received = gather_distributions(
        Inbox([message, Message(2, 0, "policy", 0, {"probs": GOOD})]), "policy", comms, M, A, STATIC
    )
    assert comms.rejected == {f"policy:{reason}": 1}
    assert received[0, 2].all() and not received[0, 1].any()
    assert torch.isfinite(probs).all()


def test_message_from_a_non_neighbour_is_rejected():
    line = Neighbourhood(np.array([[False, True, False], [True, False, True], [False, True, False]]))
    comms = Comms(IdealChannel(), 3)
    gather_distributions(Inbox([Message(2, 0, "policy", 0, {"probs": GOOD})]), "policy", comms, M, A, line)
    assert comms.rejected == {"policy:not_neighbour": 1}


class PoisoningChannel:
    """A channel whose messages from agent 1 arrive full of NaN."""

    def __init__(self) -> None:
        self.inner = IdealChannel()

    def exchange(self, round, outgoing):
        poisoned = [
            m.with_payload(
                {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in m.payload.items()}
            )
            if m.sender == 1
            else m
            for m in outgoing
        ]
        return self.inner.exchange(round, poisoned)


def test_learning_continues_when_a_peer_sends_nan(monkeypatch):
    import confide.core.trainer as trainer

    monkeypatch.setattr(trainer, "IdealChannel", PoisoningChannel)
    cfg = RunConfig(
        env=EnvConfig(agents=3),
        algo=AlgoConfig(name="ss"),
        topology=TopologyConfig(kind="complete"),
        train=TrainConfig(updates=2, batch=2),
    )
    result = train(cfg)
    # agent 1 sends two kinds to two peers in each of K = 3 rounds per update
    assert result.summary["messages_rejected"] == {"policy:non_finite": 12, "suggestion:non_finite": 12}
    assert all(np.isfinite(row["loss/surrogate"]) for row in result.metrics)
