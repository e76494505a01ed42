"""SecAgg+ consensus for PS/VPS in the federation: the secure mean equals the plain mean within 1e-5, and
nothing a node sends the relay (nor the relay's tap) holds its parameter vector."""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message

from confide.cli import check_command
from confide.core.consensus import flat_parameters
from confide.experiments.config import ConfigError, config_from_dict
from confide.federation.client import AgentNode
from confide.federation.records import MSG_PREFIX, decode
from confide.federation.runner import check_federable, federate
from confide.federation.secure_aggregation import SecAggSettings, inbox_from_mean

N = 3


def _config(name: str = "ps", **sections):
    data = {
        "env": {"agents": N},
        "algo": {"name": name},
        "topology": {"kind": "complete"},
        "train": {"updates": 1, "batch": 2, "seed": 11},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


class Outbox:
    """A client mod outside every other: records each reply exactly as it leaves the node."""

    def __init__(self) -> None:
        self.replies: list[Message] = []

    def __call__(self, message: Message, context, call_next) -> Message:
        reply = call_next(message, context)
        self.replies.append(reply)
        return reply


def _blobs(replies: list[Message]) -> list[bytes]:
    """Every byte string and array a node sent: Array data, ConfigRecord bytes, lists of bytes."""
    out: list[bytes] = []
    for reply in replies:
        if not reply.has_content():
            continue
        for record in reply.content.values():
            if isinstance(record, ArrayRecord):
                out += [bytes(a.data) for a in record.values()]
            elif isinstance(record, ConfigRecord):
                for value in record.values():
                    items = value if isinstance(value, list) else [value]
                    out += [v for v in items if isinstance(v, bytes)]
    return out


def _run(secagg: bool, algo: str = "ps"):
    outboxes = [Outbox() for _ in range(N)]
    nodes = [AgentNode(mods=[box]) for box in outboxes]
    result = federate(_config(algo), None, nodes=nodes, secagg=SecAggSettings() if secagg else None)
    return result, nodes, outboxes


def _sent_vectors(outboxes: list[Outbox], kind: str) -> dict[int, np.ndarray]:
    """Each agent's consensus vector, read from its plain (non-SecAgg) messages to the relay."""
    vectors = {}
    for agent, box in enumerate(outboxes):
        for reply in box.replies:
            if reply.has_content() and any(k.startswith(MSG_PREFIX) for k in reply.content.keys()):
                for _, m in decode(reply.content).messages:
                    if m.kind == kind:
                        vectors[agent] = m.payload["params"]
    return vectors


def _params(node: AgentNode, algo: str, agent: int) -> np.ndarray:
    pop = node.worker.learner.population
    bank = pop.actor_parameters() if algo == "ps" else pop.critic_parameters()
    return flat_parameters(bank, N)[agent]


@pytest.mark.parametrize(("algo", "kind"), [("ps", "policy_params"), ("vps", "critic_params")])
def test_secagg_mean_equals_plain_mean_and_the_relay_never_sees_a_vector(algo, kind):
    plain, plain_nodes, plain_boxes = _run(False, algo)
    secure, secure_nodes, secure_boxes = _run(True, algo)
    vectors = _sent_vectors(plain_boxes, kind)
    assert sorted(vectors) == list(range(N))  # the positive control: plain messages carry the vectors
    mean = np.mean(np.stack([v.astype(np.float64) for v in vectors.values()]), axis=0)
    settings = SecAggSettings()
    f = secure.summary["federation"]["secure_aggregation"]
    assert (f["rounds"], f["halted"], f["missing_contributors"]) == (1, 0, 0), secure.summary["federation"]
    for agent in range(N):
        got = _params(secure_nodes[agent], algo, agent)
        assert np.abs(got - mean).max() < 1e-5  # the SecAgg+ mean, as the node's learner loaded it
        assert np.abs(got - mean).max() <= settings.resolution + 1e-6
        assert np.abs(_params(plain_nodes[agent], algo, agent) - mean).max() < 1e-6  # MH = the mean
    assert secure.summary["federation"]["timing"]["rounds"]["secagg"] == 1
    # The relay's tap: no consensus message at all under SecAgg+ (the plain run taps one per link).
    assert plain.summary["bytes_sent"][kind] > 0 and secure.summary["bytes_sent"].get(kind, 0) == 0
    # The wire: no node's reply holds its vector's bytes, nor an array close to it.
    blobs = _blobs([r for box in secure_boxes for r in box.replies])
    assert len(blobs) > 10  # keys, encrypted shares and masked vectors did go up
    for vector in vectors.values():
        probe = vector.astype(np.float32).tobytes()[:64]
        assert not any(probe in blob for blob in blobs)
    for box in plain_boxes:  # the same probe finds every vector on the plain wire
        assert any(vectors[plain_boxes.index(box)].tobytes()[:64] in b for b in _blobs(box.replies))
    for reply in (r for box in secure_boxes for r in box.replies):
        for record in reply.content.values() if reply.has_content() else []:
            if isinstance(record, ArrayRecord):
                for array in record.values():
                    a = array.numpy().astype(np.float64).ravel()
                    for vector in vectors.values():
                        assert a.size != vector.size or not np.allclose(a, vector, atol=1e-3)


def test_inbox_from_mean_makes_the_consensus_mix_the_mean():
    from confide.channels import IdealChannel
    from confide.core.comms import Comms
    from confide.core.consensus import metropolis_hastings_weights, mix_received

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    adjacency = ~np.eye(4, dtype=bool)
    for participants in ([0, 1, 2, 3], [0, 2, 3]):
        mean = x[participants].astype(np.float64).mean(axis=0)
        inbox = inbox_from_mean(0, "policy_params", 0, x[0], mean, participants)
        comms = Comms(IdealChannel(), 4, kinds=("policy_params",))
        new, accepted = mix_received(
            x, inbox, "policy_params", comms, metropolis_hastings_weights(adjacency), adjacency
        )
        assert accepted[0] == len(participants) - 1 and np.abs(new[0] - mean).max() < 1e-6
    assert inbox_from_mean(0, "policy_params", 0, x[0], None, []).messages() == []


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"algo": {"name": "as"}}, "PS/VPS"),
        ({"topology": {"kind": "ring"}}, "complete graph"),
        ({"channel": {"loss": "bernoulli", "loss_probability": 0.1}}, "ideal channel"),
    ],
)
def test_secagg_refuses_what_is_not_a_plain_mean(change, match):
    with pytest.raises(ConfigError, match=match):
        check_federable(_config(**change), "inprocess", secagg=True)
    check_federable(_config(), "inprocess", secagg=True)


def test_cli_secagg_bad_input_is_one_line_exit_2(capsys):
    code = check_command(["federate", "--algo", "as", "--agents", "3", "--secagg"])
    assert code == 2
