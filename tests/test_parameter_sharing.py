"""VS, VPS and PS: bytes match a hand count; with a channel that delivers nothing they are independent
learners (VS and VPS are then IPPO exactly); no agent's parameters move because of another's except
through a delivered message; malformed messages are rejected and counted; smoke runs."""

import numpy as np
import pytest
import torch

from confide.channels import IdealChannel, Inbox, Message, Meter, array_wire_bytes
from confide.core.comms import Comms, Neighbourhood
from confide.core.consensus import flat_parameters
from confide.core.registry import build_learner
from confide.core.rollout import collect_rollout
from confide.core.trainer import make_run_env, seeds, train
from confide.core.value_sharing import neighbourhood_average, value_messages
from confide.experiments.config import (
    AlgoConfig,
    EnvConfig,
    PpoConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
)

N, B, T, A = 3, 2, 30, 2
S = N  # C. Predation's state: one position per agent
COMPLETE = ~np.eye(N, dtype=bool)


def _config(algo: str, updates: int = 1, env: str = "predation", kind: str | None = "complete") -> RunConfig:
    return RunConfig(
        env=EnvConfig(name=env, agents=2 if env == "matrix" else N),
        algo=AlgoConfig(name=algo),
        ppo=PpoConfig(iterations=2),
        topology=TopologyConfig(kind=kind),
        train=TrainConfig(updates=updates, batch=B, seed=0),
    )


def _mlp_size(sizes: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


CRITIC_P = _mlp_size((S, 128, 64, 1))  # AS/SS table sizes
POLICY_P = N * _mlp_size((S, 128, 64, A))  # PS: one head per agent


@pytest.mark.parametrize(
    "algo,kind,per_message",
    [
        ("vs", "value", 2 + array_wire_bytes("values", (T * B, 2), 4)),
        ("vps", "critic_params", 2 + array_wire_bytes("params", (CRITIC_P,), 4)),
        ("ps", "policy_params", 2 + array_wire_bytes("params", (POLICY_P,), 4)),
    ],
)
def test_bytes_per_update_on_a_complete_graph_match_a_hand_count(algo, kind, per_message):
    assert CRITIC_P == 3 * 128 + 128 + 128 * 64 + 64 + 64 + 1 == 8833
    updates = 2
    summary = train(_config(algo, updates)).summary
    per_update = N * (N - 1) * per_message  # one round, one message per directed link
    assert summary["bytes_sent"] == {"total": updates * per_update, kind: updates * per_update}
    assert summary["bytes_per_agent_per_update"] == per_update / N
    assert summary["messages_rejected"] == {}


def test_value_messages_on_a_per_sample_neighbourhood_carry_only_shared_samples():
    m = 20
    mask = np.zeros((m, N, N), dtype=bool)
    mask[:5, 0, 1] = mask[:5, 1, 0] = True
    mask[10:, 1, 2] = mask[10:, 2, 1] = True
    hood = Neighbourhood(mask)
    own = np.stack([np.full((m, 2), 10.0 * (i + 1), dtype=np.float32) for i in range(N)])
    meter = Meter(IdealChannel())
    comms = Comms(meter, N)
    inbox = comms.exchange(value_messages(own, hood, comms.round))

    def one(k: int) -> int:
        return 2 + array_wire_bytes("values", (k, 2), 4) + array_wire_bytes("index", (k,), 4)

    assert meter.total_bytes == 2 * one(5) + 2 * one(10)
    mean, peers = neighbourhood_average(own, inbox, comms, hood)
    assert mean[0, 0, 0] == 15.0 and mean[0, 7, 0] == 10.0  # with 1 at sample 0, alone at sample 7
    assert mean[1, 0, 1] == 15.0 and mean[1, 12, 1] == 25.0 and mean[1, 7, 1] == 20.0
    assert peers[1].tolist() == [1] * 5 + [0] * 5 + [1] * 10
    assert not comms.rejected


@pytest.mark.parametrize(
    "payload,reason",
    [
        ({"values": np.full((T * B, 2), np.nan, np.float32)}, "non_finite"),
        ({"values": np.zeros((T * B - 1, 2), np.float32)}, "bad_shape"),
        (
            {"values": np.zeros((T * B, 2), np.float32), "index": np.arange(T * B, dtype=np.int32)},
            "bad_index",
        ),
        ({"values": np.zeros((T * B, 2), np.float32), "extra": np.zeros(1, np.float32)}, "bad_keys"),
    ],
)
def test_malformed_value_message_is_rejected_and_counted(payload, reason):
    own = np.ones((N, T * B, 2), dtype=np.float32)
    comms = Comms(IdealChannel(), N)
    inbox = Inbox([Message(1, 0, "value", 0, payload), Message(2, 0, "value", 0, {"values": own[2] * 4})])
    mean, peers = neighbourhood_average(own, inbox, comms, Neighbourhood(COMPLETE))
    assert comms.rejected == {f"value:{reason}": 1}
    assert (mean[0] == 2.5).all() and (peers[0] == 1).all()


class DropAll:
    """A channel that delivers nothing."""

    def exchange(self, round, outgoing):
        return Inbox()


def _learner_and_rollout(algo: str):
    cfg = _config(algo)
    env = make_run_env(cfg)
    env_rng, _, gen = seeds(0)
    learner = build_learner(cfg, env.state_dim, env.n_actions, gen)
    return learner, collect_rollout(env, learner.act_logits, env_rng, torch.Generator().manual_seed(1))


def _run(learner, rollout, channel, hood, updates: int = 2):
    comms = Comms(channel, N)
    for _ in range(updates):
        learner.update(rollout, comms, hood)
    return comms


def _params(learner) -> list[torch.Tensor]:
    return [t.detach().clone() for t in learner.population.state_dict().values()]


@pytest.mark.parametrize("algo", ["vs", "vps", "ps"])
def test_with_nothing_delivered_learners_evolve_exactly_as_when_nobody_talks(algo):
    dropped, rollout = _learner_and_rollout(algo)
    silent, _ = _learner_and_rollout(algo)
    _run(dropped, rollout, DropAll(), Neighbourhood(COMPLETE))
    comms = _run(silent, rollout, IdealChannel(), Neighbourhood(COMPLETE, talks=False))
    assert comms.delivered == 0
    for a, b in zip(_params(dropped), _params(silent), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("algo", ["vs", "vps"])
def test_with_nothing_delivered_vs_and_vps_are_ippo_exactly(algo):
    dropped, rollout = _learner_and_rollout(algo)
    ippo, _ = _learner_and_rollout("ippo")
    _run(dropped, rollout, DropAll(), Neighbourhood(COMPLETE))
    _run(ippo, rollout, IdealChannel(), Neighbourhood(COMPLETE))
    for a, b in zip(_params(dropped), _params(ippo), strict=True):
        assert torch.equal(a, b)


def _agent_slice(learner, agent: int) -> np.ndarray:
    pop = learner.population
    banks = [pop.actor_parameters(), pop.critic_parameters()]
    return np.concatenate([flat_parameters(bank, N)[agent] for bank in banks])


@pytest.mark.parametrize("algo,bank", [("vs", "critic"), ("vps", "critic"), ("ps", "policy")])
@pytest.mark.parametrize("deliver", [True, False])
def test_another_agents_parameters_reach_agent_0_only_through_delivered_messages(algo, bank, deliver):
    base, rollout = _learner_and_rollout(algo)
    perturbed, _ = _learner_and_rollout(algo)
    with torch.no_grad():  # change agent 2's shared network in one copy
        pop = perturbed.population
        for p in getattr(pop, bank).group_parameters():
            p.view(N, -1)[2] += 0.5
    channel = IdealChannel if deliver else DropAll
    _run(base, rollout, channel(), Neighbourhood(COMPLETE), updates=1)
    _run(perturbed, rollout, channel(), Neighbourhood(COMPLETE), updates=1)
    same = np.array_equal(_agent_slice(base, 0), _agent_slice(perturbed, 0))
    assert same != deliver  # delivered: agent 0 feels agent 2; dropped: agent 0 is untouched


class PoisoningChannel:
    """Agent 1's messages arrive full of NaN, or one element short."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.inner = IdealChannel()

    def _spoil(self, v: np.ndarray) -> np.ndarray:
        if v.dtype.kind != "f":
            return v
        return np.full_like(v, np.nan) if self.mode == "nan" else v[:-1].copy()

    def exchange(self, round, outgoing):
        spoiled = [
            m.with_payload({k: self._spoil(v) for k, v in m.payload.items()}) if m.sender == 1 else m
            for m in outgoing
        ]
        return self.inner.exchange(round, spoiled)


@pytest.mark.parametrize("algo,kind", [("vs", "value"), ("vps", "critic_params"), ("ps", "policy_params")])
@pytest.mark.parametrize("mode,reason", [("nan", "non_finite"), ("short", "bad_shape")])
def test_malformed_messages_in_a_run_are_rejected_counted_and_learning_goes_on(
    monkeypatch, algo, kind, mode, reason
):
    import confide.core.trainer as trainer

    monkeypatch.setattr(trainer, "IdealChannel", lambda: PoisoningChannel(mode))
    result = train(_config(algo, updates=2))
    # agent 1 sends one message to each of its two peers per update
    assert result.summary["messages_rejected"] == {f"{kind}:{reason}": 4}
    assert all(np.isfinite(row["loss/surrogate"]) for row in result.metrics)


@pytest.mark.parametrize("algo", ["vs", "vps", "ps"])
@pytest.mark.parametrize("env", ["predation", "matrix"])
def test_smoke_run_with_the_environment_default_topology(algo, env):
    result = train(_config(algo, updates=2, env=env, kind=None))
    s = result.summary
    assert s["updates"] == 2 and np.isfinite(s["normalized_return"])
    assert set(s["bytes_sent"]) == {"total", *build_kinds(algo)}
    assert s["messages_rejected"] == {}


def build_kinds(algo: str) -> tuple[str, ...]:
    return {"vs": ("value",), "vps": ("critic_params",), "ps": ("policy_params",)}[algo]
