"""The agent as a Flower ``ClientApp``: one node, its private state, and the worker that trains it.

Node ``i < N`` is agent i; node ``N`` is the central unit of CL and centralised PPO (the learners that
address ``CENTRAL = N``). A node builds the same learner replica as ``confide train`` from the run seed
(every slice of every agent), its own replica of the environment and the same generators, but only ever
*trusts* its own part: slice i of the stacked networks (the central unit: its critic, and for
centralised PPO the joint policy). Its rollout keeps only its own reward column (the others are zeroed
before anything reads them and never leave the node). Replicas stay identical in everything public:

* each step the node draws the same uniforms as ``confide train`` (one ``[N, B]`` draw from its
  identically seeded generator), samples the rows it controls, sends only those actions, and steps its
  environment with the joint action the relay broadcasts;
* in its update, ``Comms`` talks through ``NodeChannel``: only messages whose sender is this node leave
  (as Flower records), and the node waits for the relay to deliver its own inbox. Other receivers in the
  replica get empty inboxes: their slices are garbage and never used.

Slice i then evolves exactly as in ``confide train`` (agent i's update reads only its own reward column
and its own inbox, and the learners' generator calls depend only on shapes; CL with several minibatches
is the exception the runner refuses). The price: every node computes every slice, N× the compute.

The learner's update is a synchronous function that calls ``Comms.exchange`` K times, so it runs on a
worker thread that hands control back and forth with the ClientApp's handler: each Flower message from
the relay resumes the worker, and the reply is whatever the worker needs next (its action, its messages
of a round, or its end-of-update report). The live worker is held by this node's ``AgentNode``;
``Context.state`` records the node's progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from torch import Tensor

from confide.channels import Inbox
from confide.channels import Message as ConfideMessage
from confide.core.comms import Comms
from confide.core.diagnostics import joint_action_rates
from confide.core.registry import Learner, build_learner
from confide.core.rollout import Rollout, collect_rollout, sample_categorical
from confide.core.trainer import make_run_env, make_schedule, neighbourhood_for, seeds
from confide.experiments.config import RunConfig, config_from_dict
from confide.federation.records import Envelope, Phase, decode, encode, hello_reply
from confide.federation.secure_aggregation import (
    CENTRAL_DP_RUN_CONFIG_KEY,
    SECAGG_RUN_CONFIG_KEY,
    SECURE_KINDS,
    SecAggSettings,
    clipped_values,
    fit_reply,
    inbox_from_mean,
    is_secagg_message,
    own_vector,
    secagg_mod,
)

RUN_CONFIG_KEY = "confide-config"  # Context.run_config: the run's config as JSON
NODE_CONFIG_KEY = "agent-id"  # Context.node_config: which agent (or N: the central unit) this node is
JOINT_CONTROLLER_ALGOS = frozenset({"centralized_ppo"})  # the central unit samples every agent's action
CENTRAL_UNIT_ALGOS = frozenset({"cl", "centralized_ppo"})  # learners that address node N


def controlled_rows(algo: str, node: int, n_agents: int) -> list[int]:
    """The rows of the joint action ``node`` decides: its own, or all of them for a joint controller."""
    if algo in JOINT_CONTROLLER_ALGOS:
        return list(range(n_agents)) if node == n_agents else []
    return [node] if node < n_agents else []


def own_rewards(rollout: Rollout, node: int) -> Rollout:
    """The rollout with every reward column but ``node``'s zeroed (the central unit keeps none)."""
    rewards = torch.zeros_like(rollout.rewards)
    if node < rollout.rewards.shape[-1]:
        rewards[..., node] = rollout.rewards[..., node]
    return dataclasses.replace(rollout, rewards=rewards)


def owned_tensors(learner: Learner, node: int, n_agents: int) -> list[tuple[str, Tensor]]:
    """The parameters ``node`` trusts in its replica: slice ``node`` of every population tensor (axis 0
    holds the agents' groups), or, for the central unit, the central critic (and, with no population,
    the whole learner)."""
    if node == n_agents:
        state = learner.state_dict()
        if learner.population is not None:
            state = {"central": state.get("central", {})}
        return _flatten(state)
    if learner.population is None:
        return []
    out = []
    for name, t in learner.population.state_dict().items():
        size = t.shape[0] // n_agents
        out.append((f"population.{name}", t[node * size : (node + 1) * size]))
    return out


def _flatten(state: Any, prefix: str = "") -> list[tuple[str, Tensor]]:
    if isinstance(state, Tensor):
        return [(prefix, state)]
    if isinstance(state, dict):
        return [t for k, v in state.items() for t in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(state, list | tuple):
        return [t for i, v in enumerate(state) for t in _flatten(v, f"{prefix}[{i}]")]
    return []


def public_digest(rollout: Rollout) -> str:
    """SHA-256 of the public trajectory (states, joint actions, episode ends): equal on every replica."""
    h = hashlib.sha256()
    for t in (rollout.states, rollout.actions, rollout.ends):
        h.update(t.numpy().tobytes())
    return h.hexdigest()


class ProtocolError(RuntimeError):
    """The relay sent something the node did not expect at this point of its update."""


class _Stop(Exception):
    pass


class NodeChannel:
    """What ``Comms`` sends through on a node: this node's messages go to the relay, its inbox comes back."""

    def __init__(self, worker: NodeWorker) -> None:
        self.worker = worker

    def exchange(self, round: int, outgoing: Sequence[ConfideMessage]) -> Inbox:
        w = self.worker
        own = []
        for position, message in enumerate(outgoing):
            if message.round != round:
                raise ValueError(f"message sent in round {message.round} during round {round}")
            if message.sender == w.node:
                own.append((position, message))
        if w.averaged and own and all(m.kind in SECURE_KINDS for _, m in own):
            return w.secure_exchange(round, [m for _, m in own])
        reply = w.handoff(Envelope(Phase.MESSAGES, w.update, round=round, messages=own), Phase.INBOX)
        if reply.round != round:
            raise ProtocolError(f"inbox of round {reply.round} during round {round}")
        for reason in reply.bad_messages:
            w.comms.reject(f"relay:{reason}")
        mine = []
        for _, message in reply.messages:
            if message.receiver != w.node:
                w.comms.reject("relay:misrouted")
                continue
            mine.append(message)
        return Inbox(mine)


class NodeComms(Comms):
    """``Comms`` on a node: the receiver policy (``hold``/``zero``) fills only this node's own inbox, so
    what it delivers and counts is what ``confide train`` delivers to and counts for this receiver."""

    def __init__(self, channel: NodeChannel, n_agents: int, node: int, **kwargs: Any) -> None:
        super().__init__(channel, n_agents, **kwargs)
        self.node = node

    def _fill_missing(self, outgoing: Sequence[ConfideMessage], arrived: Sequence[ConfideMessage]) -> list:
        return super()._fill_missing([m for m in outgoing if m.receiver == self.node], arrived)


class NodeWorker:
    """One node's training process, on its own thread: replicas, generators, and the hand-off with the
    ClientApp (``resume`` from the handler's side, ``handoff`` from the worker's)."""

    def __init__(
        self, config: RunConfig, node: int, secagg: SecAggSettings | None = None, central_dp: bool = False
    ) -> None:
        n = config.env.agents
        if not 0 <= node <= n:
            raise ValueError(f"node {node} is not an agent 0..{n - 1} or the central unit {n}")
        self.config, self.node, self.n_agents = config, node, n
        self.env = make_run_env(config)
        self.env_rng, topo_rng, self.generator = seeds(config.train.seed)  # as ``start_run``
        self.learner: Learner = build_learner(config, self.env.state_dim, self.env.n_actions, self.generator)
        self.comms = NodeComms(
            NodeChannel(self), n, node, kinds=self.learner.message_kinds, policy=config.algo.receiver_policy
        )
        self.schedule = make_schedule(config, topo_rng)
        self.rows = controlled_rows(config.algo.name, node, n)
        self.secagg, self.central_dp = secagg, central_dp
        self.averaged = secagg is not None or central_dp  # PS/VPS consensus by the relay's averaging
        self.secure_vector: np.ndarray | None = None  # the vector SecAgg+ masks, while a round is open
        self.update = 0
        self.step = 0
        self._in: queue.SimpleQueue[Envelope] = queue.SimpleQueue()
        self._out: queue.SimpleQueue[Envelope | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=f"confide-node-{node}", daemon=True)
        self._thread.start()

    # -- the handler's side --
    def resume(self, delivery: Envelope) -> Envelope:
        """Hand the worker what the relay sent; return what the worker needs sent back."""
        if not self._thread.is_alive():
            raise RuntimeError(f"node {self.node}: the worker has stopped")
        self._in.put(delivery)
        out = self._out.get()
        if isinstance(out, BaseException):
            raise RuntimeError(f"node {self.node}: {type(out).__name__}: {out}") from out
        return out

    def stop(self) -> None:
        if self._thread.is_alive():
            self._in.put(Envelope(Phase.STOP))

    def vector_to_mask(self) -> np.ndarray:
        """The handler's side of a SecAgg+ round: the vector ``secaggplus_mod`` masks (never sent raw)."""
        if self.secure_vector is None:
            raise ProtocolError(f"node {self.node}: a SecAgg+ request outside a secure round")
        return self.secure_vector

    # -- the worker's side --
    def secure_exchange(self, round: int, own: Sequence[ConfideMessage]) -> Inbox:
        """A consensus round by the relay's averaging: under SecAgg+ announce readiness and let the mod
        mask the vector; under central DP send the vector itself. Either way, take the mean back."""
        vector = own_vector(own, self.node, self.n_agents)
        if self.secagg is not None and (clipped := clipped_values(vector, self.secagg)):
            self.comms.rejected["secagg:clipped_values"] += clipped
        self.secure_vector = vector if self.secagg is not None else None
        try:
            announce = Envelope(
                Phase.AGGREGATE,
                self.update,
                round=round,
                aggregate_kind=own[0].kind,
                aggregate_vector=None if self.secagg is not None else vector,
            )
            reply = self.handoff(announce, Phase.INBOX)
        finally:
            self.secure_vector = None
        if reply.round != round:
            raise ProtocolError(f"inbox of round {reply.round} during round {round}")
        return inbox_from_mean(
            self.node, own[0].kind, round, vector, reply.aggregate_mean, reply.participants
        )

    def handoff(self, out: Envelope, expect: Phase) -> Envelope:
        self._out.put(out)
        return self._next(expect)

    def _next(self, expect: Phase) -> Envelope:
        delivery = self._in.get()
        if delivery.phase == Phase.STOP:
            raise _Stop
        if delivery.phase != expect:
            raise ProtocolError(f"expected {expect.value}, got {delivery.phase.value}")
        return delivery

    def _main(self) -> None:
        try:
            delivery = self._next(Phase.START)
            while True:
                if delivery.update != self.update or self.update >= self.config.train.updates:
                    raise ProtocolError(f"start of update {delivery.update} at update {self.update}")
                report = self._one_update()
                self.update += 1
                delivery = self.handoff(report, Phase.START)
        except _Stop:
            self._out.put(Envelope(Phase.STOPPED, self.update))
        except BaseException as err:  # the handler re-raises it: Flower replies with an error
            self._out.put(err)

    def _one_update(self) -> Envelope:
        """``confide train``'s ``_one_update`` from this node's side; returns its report."""
        self.step = 0
        self.comms.begin_update()
        rollout = collect_rollout(
            self.env, self.learner.act_logits, self.env_rng, self.generator, sample_actions=self._sample
        )
        rollout = own_rewards(rollout, self.node)
        neighbourhood = neighbourhood_for(self.schedule, self.update, rollout)
        self.learner.update(rollout, self.comms, neighbourhood)
        report: dict[str, float] = {"n_samples": rollout.n_samples, "filled_age": self.comms.filled_age}
        if self.node < self.n_agents:  # the one number the node discloses about its reward
            report["return"] = float(rollout.agent_returns().mean(dim=0)[self.node])
        report.update({f"public/{k}": v for k, v in joint_action_rates(rollout).items()})
        status = {"digest": public_digest(rollout), "diverged": self._divergence()}
        return Envelope(
            Phase.REPORT,
            self.update,
            report=report,
            rejected=dict(self.comms.rejected),
            late=dict(self.comms.late),
            filled=dict(self.comms.filled),
            status=status,
        )

    def _sample(self, states: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``collect_rollout``'s sampler: draw as ``confide train`` does, send own rows, get the joint."""
        sample_actions = getattr(self.learner, "sample_actions", None)
        logits = None
        if sample_actions is not None:
            actions, logp = sample_actions(states, generator)
        else:
            logits = self.learner.act_logits(states)
            actions, logp = sample_categorical(logits, generator)
        own = actions[self.rows].numpy()
        reply = self.handoff(Envelope(Phase.ACTION, self.update, self.step, actions=own), Phase.JOINT_ACTION)
        joint = reply.actions
        if reply.step != self.step or joint is None or joint.shape != tuple(actions.shape):
            raise ProtocolError(f"bad joint action at step {self.step}")
        joint_t = torch.from_numpy(joint)
        if logits is not None:  # log π of the action actually taken (the relay may have substituted it)
            logp = torch.log_softmax(logits, dim=-1).gather(-1, joint_t.unsqueeze(-1)).squeeze(-1)
        self.step += 1
        return joint_t, logp

    def _divergence(self) -> str:
        for name, t in owned_tensors(self.learner, self.node, self.n_agents):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{name} holds {int((~torch.isfinite(t)).sum())} NaN/inf value(s) after the update"
        return ""


class AgentNode:
    """One node of the federation: a Flower ``ClientApp`` (``query.hello``, ``train``) and, once the
    relay said hello, the ``NodeWorker`` holding the node's private state.

    ``mods`` are Flower client mods ``(message, context, call_next) -> Message`` wrapped around every
    handler (the fault tests inject failures this way).
    """

    def __init__(self, mods: Sequence[Mod] = ()) -> None:
        self.app = ClientApp(mods=[*mods, secagg_mod])  # secagg_mod passes all but SecAgg+ stages
        self.worker: NodeWorker | None = None
        self.app.query("hello")(self._hello)
        self.app.train()(self._train)

    def _hello(self, message: Message, context: Context) -> Message:
        config = config_from_dict(json.loads(str(context.run_config[RUN_CONFIG_KEY])))
        node = int(context.node_config.get(NODE_CONFIG_KEY, context.node_config.get("partition-id", -1)))
        secagg = str(context.run_config.get(SECAGG_RUN_CONFIG_KEY, ""))
        settings = SecAggSettings(**json.loads(secagg)) if secagg else None
        central_dp = bool(context.run_config.get(CENTRAL_DP_RUN_CONFIG_KEY, ""))
        if self.worker is None:
            self.worker = NodeWorker(config, node, settings, central_dp)
        context.state["confide"] = ConfigRecord({"node": node, "update": 0, "phase": "hello"})
        return Message(hello_reply(node), reply_to=message)

    def _train(self, message: Message, context: Context) -> Message:
        if self.worker is None:
            raise RuntimeError("train message before hello")
        if is_secagg_message(message):  # the collect stage: secaggplus_mod masks what this returns
            return Message(fit_reply(self.worker.vector_to_mask()), reply_to=message)
        out = self.worker.resume(decode(message.content))
        context.state["confide"] = ConfigRecord(
            {"node": self.worker.node, "update": out.update, "phase": out.phase.value}
        )
        return Message(encode(out), reply_to=message)

    def close(self) -> None:
        """Let the worker thread end (after the run, or for a node the relay gave up on)."""
        if self.worker is not None:
            self.worker.stop()


def node_count(config: RunConfig) -> int:
    """Agents, plus the central unit for the learners that address one (CL, centralised PPO)."""
    return config.env.agents + (1 if config.algo.name in CENTRAL_UNIT_ALGOS else 0)
