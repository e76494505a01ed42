"""SecAgg+ for PS and VPS consensus on the complete graph: the relay learns the mean of the agents'
parameter vectors and nothing else about any one of them.

On the complete graph the Metropolis–Hastings consensus step is the plain mean (every weight is 1/N), so
a consensus round is a sum. With ``--secagg`` a node does not send its vector to its neighbours; it tells
the relay it is ready (``Phase.AGGREGATE``), and the relay runs Flower's ``SecAggPlusWorkflow`` (the
legacy workflow: the only one SecAgg+ works through in Flower 1.41) over the nodes that are ready.
Each node's ``ClientApp`` carries ``secaggplus_mod`` (behind ``secagg_mod``, which lets the federation's
own messages pass): the mod does the key agreement, secret sharing, quantisation and masking, and asks
the node's handler for its vector only to mask it (``fit_reply``); the raw vector never leaves the node.
The relay then sends each contributor the mean and the list of contributors, and the node turns them
into the inbox its unchanged consensus code expects (``inbox_from_mean``).

Precision: Flower clips every entry to ``[-clipping_range, clipping_range]`` and quantises it with
stochastic rounding into ``quantization_range`` levels; with weight 1 per node (``max_weight = 1``) the
mean is within one level, 2·clipping_range/quantization_range ≈ 3.8e-6 by default, of the exact mean.
Entries beyond the clipping range are clipped; each node counts its own (``secagg:clipped_values``).
Flower's stochastic rounding draws from numpy's global generator and its keys from ``os.urandom``, so a
SecAgg+ run is not bit-reproducible (and not bit-identical to ``confide train``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Parameters, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid

from confide.channels import Inbox
from confide.channels import Message as ConfideMessage

SECURE_KINDS = frozenset({"policy_params", "critic_params"})  # PS and VPS consensus messages
SECURE_ALGOS = frozenset({"ps", "vps"})
SECAGG_RUN_CONFIG_KEY = "confide-secagg"  # Context.run_config: the settings as JSON ("" when off)
CENTRAL_DP_RUN_CONFIG_KEY = "confide-central-dp"  # Context.run_config: central DP settings ("" when off)


@dataclass(frozen=True)
class SecAggSettings:
    """SecAgg+ parameters (Flower's names). Every node weighs 1, so ``max_weight = 1`` keeps the full
    quantisation precision (Flower's default of 1000 would cost three decimal digits)."""

    clipping_range: float = 8.0
    quantization_range: int = 2**22
    modulus_range: int = 2**32
    max_weight: float = 1.0
    reconstruction_threshold: float = 0.5  # share of the key shares needed to unmask (>= 2 shares)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.clipping_range) and self.clipping_range > 0):
            raise ValueError(f"secagg clipping_range must be > 0, got {self.clipping_range}")
        if not 0 < self.reconstruction_threshold <= 1:
            raise ValueError("secagg reconstruction_threshold must be in (0, 1]")

    @property
    def resolution(self) -> float:
        """One quantisation level: the bound on |SecAgg+ mean − exact mean| per entry."""
        return 2 * self.clipping_range / self.quantization_range


# ---- the node's side -----------------------------------------------------------------------------------


def is_secagg_message(message: Message) -> bool:
    return (
        message.metadata.message_type == MessageType.TRAIN
        and message.has_content()
        and RECORD_KEY_CONFIGS in message.content.config_records
    )


def secagg_mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """``secaggplus_mod`` for the SecAgg+ stages only; the federation's own messages pass untouched."""
    if is_secagg_message(message):
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


def fit_reply(vector: np.ndarray) -> RecordDict:
    """The legacy ``FitRes`` the mod masks: the node's vector, weight 1 (the mod clears it after masking)."""
    params = ndarrays_to_parameters([np.ascontiguousarray(vector, dtype=np.float32)])
    return compat.fitres_to_recorddict(FitRes(Status(Code.OK, ""), params, 1, {}), keep_input=True)


def own_vector(own: Sequence[ConfideMessage], node: int, n_agents: int) -> np.ndarray:
    """The one vector a node's consensus round sends to every other agent (the complete graph)."""
    receivers = sorted(m.receiver for m in own)
    if receivers != [j for j in range(n_agents) if j != node]:
        raise ValueError(f"secagg needs the complete graph: node {node} sends to {receivers}")
    first = own[0].payload.get("params")
    if first is None or any(not np.array_equal(m.payload.get("params"), first) for m in own):
        raise ValueError("secagg: a consensus round must send the same vector to every neighbour")
    return first


def inbox_from_mean(
    node: int,
    kind: str,
    round: int,
    own: np.ndarray,
    mean: np.ndarray | None,
    participants: Sequence[int],
) -> Inbox:
    """The inbox whose Metropolis–Hastings mix (complete graph, renormalised over who was heard) is the
    secure mean: from each other contributor, the others' mean (k·mean − own)/(k − 1)."""
    others = [j for j in participants if j != node]
    if mean is None or node not in participants or not others:
        return Inbox([])
    k = len(others) + 1
    rest = (k * mean.astype(np.float64) - own.astype(np.float64)) / (k - 1)
    payload = rest.astype(np.float32)
    return Inbox([ConfideMessage(j, node, kind, round, {"params": payload}) for j in others])


def clipped_values(vector: np.ndarray, settings: SecAggSettings) -> int:
    return int((np.abs(vector) > settings.clipping_range).sum())


# ---- the relay's side ----------------------------------------------------------------------------------


class _MeanOfContributors(FedAvg):
    """FedAvg that records who contributed (SecAgg+ hands it the unmasked mean as every result)."""

    contributors: list[int]

    def aggregate_fit(self, server_round: int, results: list, failures: list) -> Any:
        self.contributors = sorted(int(proxy.node_id) for proxy, _ in results)
        return super().aggregate_fit(server_round, results, failures)


@dataclass
class SecureMean:
    """What the relay learns from one SecAgg+ round: the mean (or None if the protocol halted) and the
    Flower node ids whose vectors it averages."""

    mean: np.ndarray | None
    contributors: list[int]
    failures: int


def secure_mean(
    grid: Grid,
    node_ids: Sequence[int],
    round: int,
    settings: SecAggSettings,
    timeout: float | None,
) -> SecureMean:
    """Run Flower's ``SecAggPlusWorkflow`` over ``node_ids`` (at least 2) and return the mean."""
    k = len(node_ids)
    if k < 2:
        return SecureMean(None, [], 0)
    manager = SimpleClientManager()
    proxies: list[ClientProxy] = [GridClientProxy(int(n), grid, grid.run.run_id) for n in node_ids]
    for proxy in proxies:
        manager.register(proxy)
    strategy = _MeanOfContributors(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=k,
        min_available_clients=k,
        fit_metrics_aggregation_fn=lambda metrics: {},  # the nodes report none
    )
    strategy.contributors = []
    base = Context(grid.run.run_id, 0, {}, RecordDict(), {})
    context = LegacyContext(base, strategy=strategy, client_manager=manager)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WorkflowKey.CURRENT_ROUND: round + 1})
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()  # no global model: consensus
    workflow = SecAggPlusWorkflow(
        num_shares=1.0,  # every node shares its keys with every other (SecAgg+ on the complete graph)
        reconstruction_threshold=settings.reconstruction_threshold,
        max_weight=settings.max_weight,
        clipping_range=settings.clipping_range,
        quantization_range=settings.quantization_range,
        modulus_range=settings.modulus_range,
        timeout=timeout,
    )
    flower_log = logging.getLogger("flwr")
    level = flower_log.level
    flower_log.setLevel(logging.WARNING)  # the workflow logs every stage at INFO
    try:
        workflow(grid, context)
    finally:
        flower_log.setLevel(level)
    arrays = _arrays(context.state.array_records[MAIN_PARAMS_RECORD])
    failures = len(node_ids) - len(strategy.contributors)
    if len(arrays) != 1 or not strategy.contributors:
        return SecureMean(None, [], failures)
    return SecureMean(np.asarray(arrays[0], dtype=np.float64), strategy.contributors, failures)


def _arrays(record: ArrayRecord) -> list[np.ndarray]:
    params: Parameters = compat.arrayrecord_to_parameters(record, keep_input=True)
    return parameters_to_ndarrays(params)
