"""The relay: the ``ServerApp`` that runs the rounds of a federated run.

Per update it sends every live node ``start``; then, whatever the nodes answer:

* ``action`` (each env step): it assembles the joint action ``[N, B]`` from the rows each node controls
  and broadcasts it (a row whose reply is missing or malformed gets ``FALLBACK_ACTION`` and is counted);
* ``messages`` (each exchange round of the learners' updates): it checks each message (the sender must be
  the node that sent it, the receiver a node, the round the current one, the kind one the algorithm
  declares), hands them in ``confide train``'s order to the run's channel stack (``build_run_channel``:
  the same layers, meter and tap as ``confide train``), and delivers each node its own inbox;
* ``aggregate`` (a PS/VPS consensus round under ``--secagg`` or ``--central-dp``): it runs Flower's
  SecAgg+ workflow over the ready nodes, never seeing a node's vector (``secure_aggregation``), or
  Flower's server-side fixed-clipping DP wrapper on the vectors they sent (``central_dp``), and sends
  each node the mean;
* ``report`` (end of update): it adds the returns the agents disclose into the metrics row.

The relay never sees a reward, a network or an optimiser; it sees every message it relays, in plaintext
(the T3 curious relay of ``docs/leakage.md``): the channel stack, encryption included, runs here.

Faults: a node whose ClientApp raises (an error reply), that does not answer within ``timeout``, or
that answers out of step (another phase or update) is *lost* for the rest of the run: from then on it
is sent nothing, its actions are ``FALLBACK_ACTION``, its messages and report are missing and messages
addressed to it are undelivered, all counted. A reply that does not parse, or a message in it that is
malformed, is rejected and counted; the node stays in the run. The run finishes while any node is live.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid

from confide.channels import IdealChannel
from confide.channels import Message as ConfideMessage
from confide.core.comms import Comms
from confide.core.trainer import DivergenceError, build_run_channel
from confide.experiments.config import RunConfig
from confide.federation.central_dp import CentralDpAverager, CentralDpSettings
from confide.federation.client import controlled_rows
from confide.federation.records import (
    HELLO_TYPE,
    TRAIN_TYPE,
    Envelope,
    FlowerBytes,
    MalformedRecords,
    Phase,
    decode,
    encode,
    read_hello,
)
from confide.federation.secure_aggregation import SecAggSettings, secure_mean

DEFAULT_TIMEOUT = 300.0  # seconds a node may take to answer (a whole update's compute between two rounds)
FALLBACK_ACTION = 0  # the action the relay uses for a row whose node is lost or whose reply is bad
PHASE_ORDER = (Phase.ACTION, Phase.MESSAGES, Phase.AGGREGATE, Phase.REPORT, Phase.STOPPED)


def _rank(phase: Phase) -> int:
    """Ties between phases go to the earliest in an update."""
    return PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER)


class FederationError(RuntimeError):
    """The run cannot go on: nodes missing at the start, or no node left that answers."""


@dataclass
class Faults:
    """What went wrong, by kind. ``missed_replies``: requests with no usable reply, by phase."""

    lost: dict[int, dict[str, Any]] = field(default_factory=dict)
    missed_replies: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    substituted_actions: int = 0  # (agent, step) pairs filled with FALLBACK_ACTION, all B episodes each
    undelivered: Counter[str] = field(default_factory=Counter)  # messages addressed to a lost node
    out_of_sync: int = 0  # reports whose public trajectory differed from the majority's

    def to_dict(self) -> dict[str, Any]:
        return {
            "lost_nodes": {str(k): v for k, v in sorted(self.lost.items())},
            "missed_replies": dict(self.missed_replies),
            "rejected": dict(self.rejected),
            "substituted_actions": self.substituted_actions,
            "undelivered": dict(self.undelivered),
            "replicas_out_of_sync": self.out_of_sync,
        }


class Relay:
    """The ServerApp's logic for one run; ``main`` is registered with ``ServerApp.main()``.

    Args:
        kinds: the message kinds the algorithm declares (the relay refuses others).
        n_actions: the environment's action count (to check actions).
        on_update: called with each metrics row as soon as it is complete.
        secagg: SecAgg+ settings when PS/VPS consensus runs by secure aggregation (``--secagg``).
        central_dp: DP-FedAvg settings when PS/VPS consensus runs by Flower's central DP wrapper.
    """

    def __init__(
        self,
        config: RunConfig,
        kinds: Sequence[str],
        n_actions: int,
        n_nodes: int,
        timeout: float = DEFAULT_TIMEOUT,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        secagg: SecAggSettings | None = None,
        central_dp: CentralDpSettings | None = None,
    ) -> None:
        self.config, self.kinds, self.n_actions = config, frozenset(kinds), n_actions
        self.n_agents, self.n_nodes, self.batch = config.env.agents, n_nodes, config.train.batch
        self.timeout, self.on_update = timeout, on_update
        self.channel, self.meter, self.tap = build_run_channel(config)
        self.flower_bytes = FlowerBytes()
        self.faults = Faults()
        self.metrics: list[dict[str, Any]] = []
        self.node_ids: dict[int, int] = {}  # node (agent id, or N) → Flower node id
        self.live: set[int] = set()
        self.rejected: dict[int, Counter[str]] = {}  # each node's last reported Comms counts
        self.late: dict[int, Counter[str]] = {}
        self.filled: dict[int, Counter[str]] = {}
        self.filled_age: dict[int, int] = {}
        self.round = 0
        self.broadcasts: Counter[str] = Counter()  # requests sent together, by the phase they carry
        self.broadcast_seconds: Counter[str] = Counter()
        self.secagg = secagg
        self.central_dp = CentralDpAverager(config, central_dp) if central_dp is not None else None
        self.averaging = "secagg" if secagg is not None else "central_dp" if central_dp is not None else None
        self.secure: Counter[str] = Counter()  # SecAgg+ rounds, halted rounds, missing contributors

    # -- the ServerApp --
    def main(self, grid: Grid, context: Context) -> None:
        self._hello(grid)
        for update in range(self.config.train.updates):
            row = self._update(grid, update)
            self.metrics.append(row)
            if self.on_update is not None:
                self.on_update(row)
        stop = [
            Message(encode(Envelope(Phase.STOP)), self.node_ids[n], TRAIN_TYPE) for n in sorted(self.live)
        ]
        grid.send_and_receive(stop, timeout=min(self.timeout, 10.0))  # let the workers end; replies unused

    def _hello(self, grid: Grid) -> None:
        ids = list(grid.get_node_ids())
        messages = [Message(RecordDict(), node_id, HELLO_TYPE) for node_id in ids]
        replies = grid.send_and_receive(messages, timeout=self.timeout)
        by_id = {m.metadata.message_id: node_id for m, node_id in zip(messages, ids, strict=True)}
        for reply in replies:
            node_id = by_id.get(reply.metadata.reply_to_message_id)
            if node_id is None or reply.has_error():
                continue
            try:
                node = read_hello(reply.content)
            except MalformedRecords:
                continue
            if 0 <= node < self.n_nodes and node not in self.node_ids:
                self.node_ids[node] = node_id
        missing = sorted(set(range(self.n_nodes)) - set(self.node_ids))
        if missing or len(ids) != self.n_nodes:
            raise FederationError(
                f"{len(ids)} nodes for {self.n_nodes} places; no valid hello from node(s) {missing}"
            )
        self.live = set(self.node_ids)

    # -- one update --
    def _update(self, grid: Grid, update: int) -> dict[str, Any]:
        before_bytes = self.meter.total_bytes
        before_missed, before_rejected = (
            sum(self.faults.missed_replies.values()),
            sum(self.faults.rejected.values()),
        )
        replies = self._send(grid, {node: Envelope(Phase.START, update) for node in self.live}, update)
        step = 0
        while True:
            phase = self._agree(replies, update)
            if phase == Phase.ACTION:
                joint = self._joint_action(replies, step)
                out = {node: Envelope(Phase.JOINT_ACTION, update, step, actions=joint) for node in self.live}
                replies = self._send(grid, out, update)
                step += 1
            elif phase == Phase.MESSAGES:
                replies = self._send(grid, self._relay(replies, update), update)
            elif phase == Phase.AGGREGATE:
                replies = self._send(grid, self._secure_round(grid, replies, update), update)
            elif phase == Phase.REPORT:
                row = self._row(update, replies, before_bytes)
                row["federation/missed_replies"] = sum(self.faults.missed_replies.values()) - before_missed
                row["federation/relay_rejected"] = sum(self.faults.rejected.values()) - before_rejected
                return row
            else:
                raise FederationError(f"update {update}: the nodes answered {phase.value} mid-update")

    def _send(
        self, grid: Grid, out: dict[int, Envelope], update: int, timeout: float | None = None
    ) -> dict[int, Envelope]:
        """One request per node, the parsed replies of those that answered usably."""
        started = time.perf_counter()
        messages = {
            node: Message(encode(e), self.node_ids[node], TRAIN_TYPE, group_id=str(update))
            for node, e in out.items()
        }
        replies = grid.send_and_receive(list(messages.values()), timeout=timeout or self.timeout)
        phase = next(iter(out.values())).phase.value if out else "none"
        self.broadcasts[phase] += 1
        self.broadcast_seconds[phase] += time.perf_counter() - started
        by_id = {m.metadata.message_id: node for node, m in messages.items()}
        got: dict[int, Envelope] = {}
        answered: set[int] = set()
        for reply in replies:
            node = by_id.get(reply.metadata.reply_to_message_id)
            if node is None or node in answered:
                continue
            answered.add(node)
            if reply.has_error():
                self._lose(node, update, out[node].phase, "error", reply.error.reason or "")
                continue
            try:
                got[node] = decode(reply.content)
            except MalformedRecords as err:
                self.faults.rejected[f"reply:{err.reason}"] += 1
                self.faults.missed_replies[out[node].phase.value] += 1
        for node in out:
            if node not in answered:
                self._lose(
                    node, update, out[node].phase, "timeout", f"no reply within {timeout or self.timeout}s"
                )
        return got

    def _lose(self, node: int, update: int, phase: Phase, reason: str, detail: str) -> None:
        self.faults.missed_replies[phase.value] += 1
        if node in self.live:
            self.live.discard(node)
            self.faults.lost[node] = {
                "update": update,
                "phase": phase.value,
                "reason": reason,
                "detail": detail[:300],
            }
        if not self.live:
            raise FederationError(f"update {update}: every node is lost (last: node {node}, {reason})")

    def _agree(self, replies: dict[int, Envelope], update: int) -> Phase:
        """The phase the live nodes are at (the most common among the replies); nodes elsewhere are out
        of step and lost (their replicas no longer follow the run)."""
        valid = {node: e for node, e in replies.items() if node in self.live}
        if not valid:
            raise FederationError(f"update {update}: no usable reply from any live node")
        counts = Counter((e.phase, e.update) for e in valid.values())
        (phase, at), _ = max(counts.items(), key=lambda kv: (kv[1], -_rank(kv[0][0])))
        for node, e in valid.items():
            if (e.phase, e.update) != (phase, at):
                self.faults.rejected["reply:out_of_step"] += 1
                self._lose(node, update, e.phase, "out_of_step", f"{e.phase.value} of update {e.update}")
                del replies[node]
        return phase

    def _joint_action(self, replies: dict[int, Envelope], step: int) -> np.ndarray:
        joint = np.full((self.n_agents, self.batch), FALLBACK_ACTION, dtype=np.int64)
        filled = np.zeros(self.n_agents, dtype=bool)
        for node, e in replies.items():
            rows = controlled_rows(self.config.algo.name, node, self.n_agents)
            a = e.actions
            if e.step != step or a is None or a.shape != (len(rows), self.batch):
                self.faults.rejected["reply:bad_action"] += 1
                continue
            if a.size and (a.min() < 0 or a.max() >= self.n_actions):
                self.faults.rejected["reply:bad_action"] += 1
                continue
            joint[rows] = a
            filled[rows] = True
        self.faults.substituted_actions += int((~filled).sum())
        return joint

    def _relay(self, replies: dict[int, Envelope], update: int) -> dict[int, Envelope]:
        """Check the round's messages, pass them through the channel stack, return each node's inbox."""
        r = self.round
        collected: list[tuple[int, int, ConfideMessage]] = []
        for node, e in sorted(replies.items()):
            if e.round != r:
                self.faults.rejected["reply:bad_round"] += 1
                continue
            for reason in e.bad_messages:
                self.faults.rejected[f"message:{reason}"] += 1
            for order, m in e.messages:
                reason = self._check(node, m, r)
                if reason is not None:
                    self.faults.rejected[f"message:{reason}"] += 1
                    continue
                collected.append((order, node, m))
        collected.sort(key=lambda x: (x[0], x[1]))
        inbox = self.channel.exchange(r, [m for _, _, m in collected])
        self.round += 1
        for message in inbox.messages():
            if message.receiver not in self.live:
                self.faults.undelivered[message.kind] += 1
        return {
            node: Envelope(Phase.INBOX, update, round=r, messages=[(0, m) for m in inbox.for_agent(node)])
            for node in self.live
        }

    def _secure_round(self, grid: Grid, replies: dict[int, Envelope], update: int) -> dict[int, Envelope]:
        """A consensus round by averaging (SecAgg+ or central DP): the mean of the ready nodes' vectors,
        sent with the list of contributors to every live node."""
        r = self.round
        self.round += 1
        ready: dict[int, Envelope] = {}
        for node, e in sorted(replies.items()):
            vector_ok = (e.aggregate_vector is None) == (self.central_dp is None) and (
                e.aggregate_vector is None or bool(np.isfinite(e.aggregate_vector).all())
            )
            if self.averaging is None or e.round != r or e.aggregate_kind not in self.kinds or not vector_ok:
                self.faults.rejected["reply:bad_aggregate"] += 1
                continue
            ready[node] = e
        started = time.perf_counter()
        mean, contributors = self._average(grid, ready, r)
        self.broadcast_seconds[self.averaging or "aggregate"] += time.perf_counter() - started
        self.broadcasts[self.averaging or "aggregate"] += 1
        agent_of = {flower_id: node for node, flower_id in self.node_ids.items()}
        participants = [agent_of[n] for n in contributors if n in agent_of] if mean is not None else []
        self.secure["rounds"] += 1
        self.secure["halted"] += int(mean is None)
        self.secure["missing_contributors"] += len(ready) - len(participants)
        return {
            node: Envelope(Phase.INBOX, update, round=r, aggregate_mean=mean, participants=participants)
            for node in self.live
        }

    def _average(self, grid: Grid, ready: dict[int, Envelope], r: int) -> tuple[np.ndarray | None, list[int]]:
        """The mean and the Flower node ids it covers (None if the protocol halted or < 2 nodes)."""
        ids = [self.node_ids[n] for n in ready]
        if self.secagg is not None:
            result = secure_mean(grid, ids, r, self.secagg, self.timeout)
            return result.mean, result.contributors
        if self.central_dp is not None and ready:
            sizes = {e.aggregate_vector.size for e in ready.values() if e.aggregate_vector is not None}
            if len(sizes) != 1:
                self.faults.rejected["reply:bad_aggregate"] += len(ready)
                return None, []
            kind = next(iter(ready.values())).aggregate_kind
            vectors = {self.node_ids[n]: e.aggregate_vector for n, e in ready.items()}
            return self.central_dp.release(kind, r, vectors), ids  # type: ignore[arg-type]
        return None, []

    def _check(self, node: int, m: ConfideMessage, r: int) -> str | None:
        if m.sender != node:
            return "spoofed_sender"
        if not 0 <= m.receiver < self.n_nodes or m.receiver == node:
            return "bad_receiver"
        if m.round != r:
            return "bad_round"
        if m.kind not in self.kinds:
            return "unknown_kind"
        return None

    def _row(self, update: int, replies: dict[int, Envelope], before_bytes: int) -> dict[str, Any]:
        reports = {node: e for node, e in replies.items() if e.phase == Phase.REPORT}
        for node, e in reports.items():
            self.rejected[node], self.late[node] = Counter(e.rejected), Counter(e.late)
            self.filled[node], self.filled_age[node] = Counter(e.filled), int(e.report.get("filled_age", 0))
            if e.status.get("diverged"):
                raise DivergenceError(f"update {update}, node {node}: {e.status['diverged']}")
        digests = Counter((e.status.get("digest"), e.report["n_samples"]) for e in reports.values())
        (digest, n_samples), _ = digests.most_common(1)[0]
        self.faults.out_of_sync += sum(n for key, n in digests.items() if key != (digest, n_samples))
        public = next(e.report for _, e in sorted(reports.items()) if e.status.get("digest") == digest)
        returns = {
            node: e.report["return"]
            for node, e in reports.items()
            if node < self.n_agents and "return" in e.report
        }
        row: dict[str, Any] = {
            "update": update,
            "env_steps": (update + 1) * int(n_samples),
            "collective_return": float(sum(returns.values())),
            "agent_returns": [returns.get(i) for i in range(self.n_agents)],
            "bytes_sent": self.meter.total_bytes - before_bytes,
            "rejected": sum(sum(c.values()) for c in self.rejected.values()),
        }
        row.update(
            {k.removeprefix("public/"): float(v) for k, v in public.items() if k.startswith("public/")}
        )
        row["federation/agents_reporting"] = len(returns)
        row["federation/lost_nodes"] = len(self.faults.lost)
        for key, value in row.items():
            if isinstance(value, float) and not np.isfinite(value):
                raise DivergenceError(f"update {update}: statistic {key} is {value}")
        return row

    def comms_totals(self) -> Comms:
        """A ``Comms`` holding the sum of the nodes' last reported counts (for the summary fields)."""
        comms = Comms(IdealChannel(), self.n_agents, kinds=self.kinds)
        comms.rejected = sum(self.rejected.values(), Counter())
        comms.late = sum(self.late.values(), Counter())
        comms.filled = sum(self.filled.values(), Counter())
        comms.filled_age = sum(self.filled_age.values())
        return comms
