"""Central DP for PS and VPS consensus on the complete graph: Flower's server-side fixed-clipping wrapper
around FedAvg, with Opacus' RDP accountant behind Flower's ``PrivacyAccountant`` protocol.

Each consensus round is one DP-FedAvg release. The relay holds a reference vector (the last release;
before the first, the mean of the agents' *initial* vectors, which are public: every party can rebuild
them from the run seed). Each node sends its vector x_i to the relay (server-side clipping: the relay is
trusted with individual vectors, unlike under SecAgg+). Flower's ``DifferentialPrivacyServerSideFixedClipping``
clips each update x_i − ref to L2 norm ``clipping_norm``, averages with FedAvg (weight 1 per node) and
adds Gaussian noise of std ``noise_multiplier · clipping_norm / k`` to the mean of k nodes. The release
goes back to every node as its new vector (``secure_aggregation.inbox_from_mean``), and becomes the next
reference. What the nodes and anyone downstream see is (ε, δ)-DP with respect to one agent's whole
update in each round (add-or-remove-one node, no sampling amplification: every node takes part in every
round), composed over the rounds by Rényi DP (``OpacusAccountant``). The guarantee covers the released
averages only: the relay itself saw the raw vectors, and the joint actions and disclosed returns are
outside it.

Flower's own RDP accountant needs ``dp-accounting`` (``flwr[dp]``, which would downgrade attrs); Opacus
is already a dependency.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    PrivacySpent,
    SamplingMethod,
)
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp

from confide.core.consensus import flat_parameters
from confide.core.registry import build_learner
from confide.core.trainer import make_run_env, seeds
from confide.experiments.config import RunConfig

ACCOUNTING_METHOD = "rdp (opacus)"


@dataclass(frozen=True)
class CentralDpSettings:
    """Flower's server-side fixed clipping: clip each update to ``clipping_norm``, noise σ·C/k on the mean."""

    noise_multiplier: float
    clipping_norm: float
    delta: float = 1e-5  # δ at which ε is reported

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(f"central DP noise multiplier must be > 0, got {self.noise_multiplier}")
        if not (math.isfinite(self.clipping_norm) and self.clipping_norm > 0):
            raise ValueError(f"central DP clipping norm must be > 0, got {self.clipping_norm}")
        if not 0 < self.delta < 1:
            raise ValueError(f"central DP delta must be in (0, 1), got {self.delta}")


class OpacusAccountant:
    """Flower's ``PrivacyAccountant`` protocol over Opacus' ``RDPAccountant`` (Gaussian releases,
    add-or-remove-one, no sampling amplification: each release has sample rate 1)."""

    def __init__(self, config: PrivacyConfig) -> None:
        if config.sampling_method is not SamplingMethod.NO_AMPLIFICATION:
            raise ValueError("OpacusAccountant accounts releases without sampling amplification only")
        self._config = config
        self._rdp = RDPAccountant()

    @property
    def config(self) -> PrivacyConfig:
        return self._config

    @property
    def num_releases(self) -> int:
        return sum(steps for _, _, steps in self._rdp.history)

    def compose(self, event: GaussianPrivacyEvent, count: int = 1) -> None:
        for _ in range(count):
            self._rdp.step(noise_multiplier=event.noise_multiplier, sample_rate=1.0)

    def _orders_and_rdp(self, extra: GaussianPrivacyEvent | None = None, count: int = 1) -> tuple:
        orders = np.asarray(self._rdp.DEFAULT_ALPHAS, dtype=np.float64)
        total = np.zeros_like(orders)
        history = list(self._rdp.history)
        if extra is not None:
            history.append((extra.noise_multiplier, 1.0, count))
        for sigma, q, steps in history:
            total += opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
        return orders, total

    def get_epsilon(self, delta: float) -> float:
        if not self._rdp.history:
            return 0.0
        return float(self._rdp.get_epsilon(delta))

    def get_delta(self, epsilon: float) -> float:
        """The smallest δ the RDP curve gives at ``epsilon`` (Opacus' RDP→(ε, δ) conversion, inverted)."""
        if not self._rdp.history:
            return 0.0
        orders, rdp = self._orders_and_rdp()
        log_delta = (orders - 1) * (rdp - epsilon + np.log((orders - 1) / orders)) - np.log(orders)
        return float(min(1.0, math.exp(float(np.min(log_delta)))))

    def get_privacy_spent(self, delta: float | None = None) -> PrivacySpent:
        delta = self._config.target_delta if delta is None else delta
        if not self._rdp.history:
            return PrivacySpent(0.0, delta, 0, ACCOUNTING_METHOD, None)
        eps, order = self._rdp.get_privacy_spent(delta=delta)
        return PrivacySpent(float(eps), delta, self.num_releases, ACCOUNTING_METHOD, float(order))

    def would_exceed(
        self, event: GaussianPrivacyEvent, max_epsilon: float | None = None, count: int = 1
    ) -> bool:
        limit = self._config.max_epsilon if max_epsilon is None else max_epsilon
        if limit is None:
            return False
        orders, rdp = self._orders_and_rdp(event, count)
        eps, _ = opacus_rdp.get_privacy_spent(orders=orders, rdp=rdp, delta=self._config.target_delta)
        return bool(eps > limit)

    def state_dict(self) -> dict[str, object]:
        return {"history": [list(h) for h in self._rdp.history]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._rdp.history = [tuple(h) for h in state["history"]]  # type: ignore[union-attr]


class _ReadyNodes:
    """The part of a ``Grid`` FedAvg's ``configure_train`` reads: which nodes take part this round."""

    def __init__(self, node_ids: list[int]) -> None:
        self.node_ids = node_ids

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)


def initial_reference(config: RunConfig, kind: str) -> np.ndarray:
    """The mean of the agents' initial vectors of ``kind`` (public: built from the run seed alone)."""
    env = make_run_env(config)
    learner = build_learner(config, env.state_dim, env.n_actions, seeds(config.train.seed)[2])
    pop = learner.population
    bank = pop.actor_parameters() if kind == "policy_params" else pop.critic_parameters()
    return flat_parameters(bank, config.env.agents).astype(np.float64).mean(axis=0)


class CentralDpAverager:
    """The relay's DP-FedAvg releases, one per consensus round, and their accountant."""

    def __init__(self, config: RunConfig, settings: CentralDpSettings) -> None:
        self.config, self.settings = config, settings
        privacy = PrivacyConfig(
            target_delta=settings.delta,
            population_size=config.env.agents,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
        self.accountant = OpacusAccountant(privacy)
        self.reference: dict[str, np.ndarray] = {}  # per kind: the last release
        self.clipped = 0  # updates whose norm exceeded the clipping norm
        self.zero_updates = 0  # updates of exactly zero, moved off zero (``_nonzero_update``)

    def release(self, kind: str, round: int, vectors: dict[int, np.ndarray]) -> np.ndarray | None:
        """One DP release of the mean of ``vectors`` (Flower node id → vector), or None if < 2 nodes."""
        k = len(vectors)
        if k < 2:
            return None
        if kind not in self.reference:
            self.reference[kind] = initial_reference(self.config, kind)
        ref = self.reference[kind]
        strategy = DifferentialPrivacyServerSideFixedClipping(
            FedAvg(fraction_train=1.0, min_train_nodes=k, min_available_nodes=k),  # never evaluates
            self.settings.noise_multiplier,
            self.settings.clipping_norm,
            k,
            accountant=self.accountant,
        )
        ref32 = ref.astype(np.float32)
        arrays = ArrayRecord({"params": Array(ref32)})
        vectors = {n: self._nonzero_update(v, ref32) for n, v in vectors.items()}
        flower_log = logging.getLogger("flwr")
        level = flower_log.level
        flower_log.setLevel(logging.WARNING)  # the wrapper logs every clip and release at INFO
        try:
            requests = list(
                strategy.configure_train(round + 1, arrays, ConfigRecord(), _ReadyNodes(list(vectors)))
            )
            replies = [_reply(r, vectors[r.metadata.dst_node_id]) for r in requests]
            released, _ = strategy.aggregate_train(round + 1, replies)
        finally:
            flower_log.setLevel(level)
        self.clipped += sum(
            int(np.linalg.norm(v.astype(np.float64) - ref32) > self.settings.clipping_norm)
            for v in vectors.values()
        )
        if released is None:
            return None
        mean = np.asarray(released["params"].numpy(), dtype=np.float64)
        self.reference[kind] = mean
        return mean

    def _nonzero_update(self, vector: np.ndarray, ref32: np.ndarray) -> np.ndarray:
        """Flower 1.41's clipping divides by the update's norm, so an update of exactly zero (an agent
        that did not move) raises ZeroDivisionError. Such a vector gets one entry moved by 1e-6 (or one
        float32 step if larger): the mean moves by at most that over k, on one entry. Counted."""
        vector = np.asarray(vector, dtype=np.float32)
        if vector.size == 0 or np.any(vector != ref32):
            return vector
        self.zero_updates += 1
        j = int(np.argmax(np.abs(ref32)))
        moved = vector.copy()
        moved[j] = ref32[j] + max(float(np.spacing(np.abs(ref32[j]))), 1e-6)
        return moved

    def summary(self) -> dict[str, Any]:
        spent = self.accountant.get_privacy_spent()
        return {
            "noise_multiplier": self.settings.noise_multiplier,
            "clipping_norm": self.settings.clipping_norm,
            "releases": spent.num_releases,
            "epsilon": spent.epsilon,
            "delta": spent.delta,
            "accountant": ACCOUNTING_METHOD,
            "clipped_updates": self.clipped,
            "zero_updates": self.zero_updates,
        }


def _reply(request: Message, vector: np.ndarray) -> Message:
    """A node's train reply as FedAvg reads it: its vector and weight 1."""
    content = RecordDict(
        {
            "arrays": ArrayRecord({"params": Array(np.ascontiguousarray(vector, dtype=np.float32))}),
            "metrics": MetricRecord({"num-examples": 1}),
        }
    )
    return Message(
        content, dst_node_id=request.metadata.dst_node_id, message_type=request.metadata.message_type
    )
