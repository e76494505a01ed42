"""Receiver fuzzing: a hostile peer replaces every message it sends with an adversarial one (wrong
shapes and dtypes, NaN/inf, negative probabilities, missing or extra arrays, huge arrays, unknown kinds,
misaddressing), in every algorithm that receives anything. Every such message is rejected and counted,
learning goes on with finite numbers, and memory stays bounded. With encryption on, ciphertext
truncated or tampered in transit is rejected by the link layer and never delivered."""

import tracemalloc

import numpy as np
import pytest
import torch

import confide.core.trainer as trainer
from confide.channels import ChannelSettings, IdealChannel
from confide.core.registry import build_learner
from confide.core.trainer import train
from confide.experiments.config import (
    ALGO_NAMES,
    AlgoConfig,
    EnvConfig,
    PpoConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
)

HOSTILE = 1
CASES = (
    "kind",
    "self",
    "nan",
    "inf",
    "short",
    "extra_dim",
    "int_dtype",
    "negative",
    "extra_key",
    "no_keys",
    "huge",
)


def adversarial(message, case: str):
    """An invalid variant of ``message`` (invalid for every receiver by construction)."""
    payload = message.payload
    floats = {k: v for k, v in payload.items() if v.dtype.kind == "f"}
    if case in ("nan", "inf") and floats:
        bad = np.nan if case == "nan" else np.inf
        return message.with_payload({**payload, **{k: np.full_like(v, bad) for k, v in floats.items()}})
    if case == "short":
        return message.with_payload(
            {k: v[:-1] if v.ndim and len(v) > 1 else v[:0] for k, v in payload.items()}
        )
    if case == "extra_dim":
        return message.with_payload({k: v[None, None] for k, v in payload.items()})
    if case == "int_dtype" and floats:
        return message.with_payload({**payload, **{k: np.ones(v.shape, np.int64) for k, v in floats.items()}})
    if case == "negative" and "probs" in payload:
        p = payload["probs"].copy()
        p[..., 0], p[..., -1] = -0.5, 1.5
        return message.with_payload({**payload, "probs": p})
    if case == "extra_key":
        return message.with_payload({**payload, "zz_smuggled": np.zeros(3, np.float32)})
    if case == "no_keys":
        return message.with_payload({})
    if case == "huge":
        return message.with_payload({k: np.zeros(1 << 21, v.dtype) for k, v in payload.items()})
    if case == "kind":
        return type(message)(message.sender, message.receiver, "not_a_kind", message.round, payload)
    # misaddressed: to itself (every algorithm rejects self-messages)
    return type(message)(message.sender, message.sender, message.kind, message.round, payload)


class HostilePeer:
    """The transport: agent ``HOSTILE``'s messages are replaced by adversarial ones, cycling through
    ``CASES``; counts how many it replaced."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.injected = 0
        self.turn = 0

    def exchange(self, round, outgoing):
        out = []
        for m in outgoing:
            if m.sender == HOSTILE:
                case = CASES[self.turn % len(CASES)]
                self.turn += 1
                bad = adversarial(m, case)
                if bad is not None and bad is not m:
                    self.injected += 1
                    m = bad
            out.append(m)
        return self.inner.exchange(round, out)


def _config(algo: str, channel: ChannelSettings | None = None) -> RunConfig:
    return RunConfig(
        env=EnvConfig(agents=3),
        algo=AlgoConfig(name=algo),
        ppo=PpoConfig(iterations=2),
        topology=TopologyConfig(kind="complete"),
        train=TrainConfig(updates=4, batch=2, seed=5),
        channel=channel or ChannelSettings(),
    )


def _receiving_algorithms() -> list[str]:
    out = []
    for algo in ALGO_NAMES:
        cfg = _config(algo)
        env = trainer.make_run_env(cfg)
        try:
            learner = build_learner(cfg, env.state_dim, env.n_actions, torch.Generator())
        except Exception:  # e.g. a joint-action space too large for this N
            continue
        if learner.message_kinds:  # algorithms that send nothing have no receiver to attack
            out.append(algo)
    return out


@pytest.mark.parametrize("algo", _receiving_algorithms())
def test_every_adversarial_message_is_rejected_counted_and_learning_goes_on(algo, monkeypatch):
    peers: list[HostilePeer] = []

    def transport():
        peers.append(HostilePeer(IdealChannel()))
        return peers[-1]

    monkeypatch.setattr(trainer, "IdealChannel", transport)
    tracemalloc.start()
    result = train(_config(algo))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (peer,) = peers
    assert peer.injected > 0
    assert sum(result.summary["messages_rejected"].values()) == peer.injected
    assert "unknown_kind" in result.summary["messages_rejected"]
    for row in result.metrics:
        assert all(np.isfinite(v) for v in row.values() if isinstance(v, float) and not np.isnan(v))
    assert peak < 200 * 2**20  # bounded: a few 8 MB hostile arrays at a time, nothing accumulates


class CorruptWire:
    """Below the encryption layer: flips one bit of, or truncates, agent 1's ciphertexts."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.corrupted = 0

    def exchange(self, round, outgoing):
        out = []
        for k, m in enumerate(outgoing):
            if m.sender == HOSTILE:
                ct = m.payload["ct"].copy()
                if k % 2:
                    ct[len(ct) // 2] ^= 0x10
                else:
                    ct = ct[: len(ct) // 3]
                m = m.with_payload({"ct": ct})
                self.corrupted += 1
            out.append(m)
        return self.inner.exchange(round, out)


@pytest.mark.parametrize("algo", ["as", "vs", "ps", "cl"])
def test_tampered_or_truncated_ciphertext_is_rejected_by_the_link_and_counted(algo, monkeypatch):
    wires: list[CorruptWire] = []

    def transport():
        wires.append(CorruptWire(IdealChannel()))
        return wires[-1]

    monkeypatch.setattr(trainer, "IdealChannel", transport)
    result = train(_config(algo, ChannelSettings(encrypt=True)))
    (wire,) = wires
    rejections = result.summary["channel"]["rejections"]["encryption"]
    assert wire.corrupted > 0 and sum(rejections.values()) == wire.corrupted
    assert set(k for k, v in rejections.items() if v) <= {"malformed", "tampered"}
    assert result.summary["messages_rejected"] == {}  # nothing corrupted ever reached an algorithm
