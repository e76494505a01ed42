"""The federation (agents as Flower ClientApps, the relay as the ServerApp, in-process Grid): exactly
``confide train`` with the ideal channel, Flower's bytes beside the meter's, and faults that end as
counted losses and rejections instead of a failed run."""

from __future__ import annotations

import json
import os
import threading
from importlib.metadata import version

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from confide.channels import Message as ConfideMessage
from confide.channels.codec import DTYPE_CODES
from confide.cli import check_command
from confide.core.registry import build_learner
from confide.core.trainer import train
from confide.experiments.checkpoint import checkpoint_path, load_checkpoint
from confide.experiments.config import ALGO_NAMES, ConfigError, config_from_dict
from confide.experiments.io import read_jsonl
from confide.federation.client import (
    CENTRAL_UNIT_ALGOS,
    JOINT_CONTROLLER_ALGOS,
    AgentNode,
    node_count,
    owned_tensors,
)
from confide.federation.grid import InProcessGrid, from_wire, to_wire
from confide.federation.records import Envelope, MalformedRecords, Phase, decode, encode
from confide.federation.runner import check_federable, federate


def _config(algo: str, **sections):
    data = {"env": {"agents": 3}, "algo": {"name": algo}, "train": {"updates": 3, "batch": 2, "seed": 5}}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


# ---- records and the wire ------------------------------------------------------------------------------


def _round_trip(envelope: Envelope) -> Envelope:
    with InProcessGrid([], {}):  # sets Flower's run identity, as the runtime does
        message = Message(encode(envelope), 1000, "train")
        return decode(from_wire(to_wire(message)).content)


ARRAYS = st.sampled_from(sorted(DTYPE_CODES)).flatmap(
    lambda dtype: hnp.arrays(
        np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
)


@settings(max_examples=40, deadline=None)
@given(
    payload=st.dictionaries(st.text(min_size=1, max_size=8), ARRAYS, max_size=3), order=st.integers(0, 10**6)
)
def test_messages_round_trip_exactly_through_flower_records_and_wire(payload, order):
    sent = ConfideMessage(2, 0, "policy", 7, payload)
    got = _round_trip(Envelope(Phase.MESSAGES, update=1, round=7, messages=[(order, sent)]))
    assert got.phase == Phase.MESSAGES and got.round == 7 and not got.bad_messages
    ((got_order, message),) = got.messages
    assert got_order == order and (message.sender, message.receiver, message.kind, message.round) == (
        2,
        0,
        "policy",
        7,
    )
    assert list(message.payload) == list(payload)
    for name, value in payload.items():
        assert message.payload[name].dtype == value.dtype and message.payload[name].shape == value.shape
        assert message.payload[name].tobytes() == value.tobytes()  # bitwise, NaN payloads included
    assert message.encoded_payload() == sent.encoded_payload()  # the meter would count the same bytes


def test_report_and_actions_round_trip():
    report = Envelope(
        Phase.REPORT,
        update=4,
        report={"n_samples": 60, "return": -1.25, "public/actions/cooperate": 0.5},
        rejected={"policy:bad_shape": 2},
        late={"policy": 1},
        status={"digest": "ab", "diverged": ""},
    )
    got = _round_trip(report)
    assert (got.report, got.rejected, got.late, got.status) == (
        report.report,
        report.rejected,
        report.late,
        report.status,
    )
    joint = np.arange(6, dtype=np.int64).reshape(3, 2)
    got = _round_trip(Envelope(Phase.JOINT_ACTION, update=1, step=5, actions=joint))
    assert got.step == 5 and np.array_equal(got.actions, joint) and got.actions.dtype == np.int64


def test_malformed_records_are_refused_with_a_reason():
    with pytest.raises(MalformedRecords) as err:
        decode(RecordDict())
    assert err.value.reason == "bad_control"
    content = encode(Envelope(Phase.ACTION, update=0, step=0, actions=np.zeros((1, 2), dtype=np.int64)))
    content["action"] = ArrayRecord({"actions": Array(np.zeros((1, 2), dtype=np.float32))})
    with pytest.raises(MalformedRecords) as err:
        decode(content)
    assert err.value.reason == "bad_action"
    good = ConfideMessage(0, 1, "policy", 0, {"probs": np.ones(3, dtype=np.float32)})
    content = encode(Envelope(Phase.MESSAGES, messages=[(0, good), (1, good), (2, good)]))
    content["msg.1"] = ArrayRecord({"probs": Array(np.ones(3, dtype=np.complex64))})  # no confide dtype
    content["msg.2.head"] = ConfigRecord(
        {"sender": "zero", "receiver": 1, "kind": "policy", "round": 0, "order": 2}
    )
    got = decode(content)
    assert [o for o, _ in got.messages] == [0] and sorted(got.bad_messages) == ["bad_header", "bad_payload"]


def test_flower_private_modules_contract():
    """The in-process grid uses non-public Flower modules: if this fails, Flower moved them (pin 1.41)."""
    assert version("flwr") == "1.41.0", "confide.federation.grid is written against flwr 1.41.0"
    from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects, no_object_id_recompute
    from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    assert SUPERLINK_NODE_ID == 1 and ErrorCode.CLIENT_APP_RAISED_EXCEPTION == 2
    assert {"_task_id", "_run_id", "_node_id"} <= set(vars(TaskIdentity))
    assert Run.create_empty(3).run_id == 3
    with InProcessGrid([], {}, run_id=3):
        assert TaskIdentity.run_id == 3
        message = Message(RecordDict({"a": ArrayRecord({"x": Array(np.arange(5.0))})}), 1000, "train")
        with no_object_id_recompute():
            objects = {k: o.deflate() for k, o in get_all_nested_objects(message).items()}
        again = inflate_object_from_contents(message.object_id, objects)
        assert again.object_id == message.object_id  # content addressing survives the round trip
        assert np.array_equal(again.content["a"]["x"].numpy(), np.arange(5.0))


# ---- equality with confide train -----------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["as", "ps"])
def test_federated_run_equals_train(algo, tmp_path):
    config = _config(algo)
    reference = train(config, tmp_path / "train")
    nodes = [AgentNode() for _ in range(node_count(config))]
    result = federate(config, tmp_path / "fed", nodes=nodes, timeout=120)
    assert len(result.metrics) == len(reference.metrics) == 3
    for ours, theirs in zip(result.metrics, reference.metrics, strict=True):
        common = [k for k in ours if k in theirs]
        assert {"collective_return", "agent_returns", "bytes_sent", "rejected", "env_steps"} <= set(common)
        assert {k: ours[k] for k in common} == {k: theirs[k] for k in common}  # identical, not approximate
    summary = result.summary
    for key, value in reference.summary.items():
        if key != "wall_seconds":
            assert summary[key] == value, key
    assert result.transcript_digest == reference.transcript_digest
    # every agent's own slice of the networks equals confide train's, bit for bit
    state = load_checkpoint(checkpoint_path(tmp_path / "train"))["state"]["learner"]
    env = nodes[0].worker.env
    ref = build_learner(config, env.state_dim, env.n_actions, torch.Generator())
    ref.load_state_dict(state)
    for k, node in enumerate(nodes):
        mine, theirs = owned_tensors(node.worker.learner, k, 3), owned_tensors(ref, k, 3)
        assert mine and [n for n, _ in mine] == [n for n, _ in theirs]
        for (name, a), (_, b) in zip(mine, theirs, strict=True):
            assert torch.equal(a, b), f"node {k}: {name}"
    on_disk = read_jsonl(tmp_path / "fed" / "metrics.jsonl")  # appended per update, rewritten at the end
    assert on_disk == [json.loads(json.dumps(row, sort_keys=True)) for row in result.metrics]
    assert (
        (tmp_path / "fed" / "summary.json").is_file()
        and summary["complete"]
        and summary["backend"] == "inprocess"
    )


@pytest.mark.parametrize("algo", ["cl", "centralized_ppo", "dpo_shared"])
def test_central_unit_and_statistics_algorithms_equal_train(algo):
    config = _config(algo, env={"agents": 2}, train={"updates": 2})
    reference = train(config)
    result = federate(config, timeout=120)
    for ours, theirs in zip(result.metrics, reference.metrics, strict=True):
        assert {k: ours[k] for k in ours if k in theirs} == {k: theirs[k] for k in ours if k in theirs}
    assert result.transcript_digest == reference.transcript_digest


def test_flower_bytes_cover_the_payload_bytes_per_kind():
    result = federate(_config("as", topology={"kind": "complete"}, train={"updates": 1}), timeout=120)
    fb = result.summary["flower_bytes"]
    assert set(fb["by_kind"]) == {"policy", "anticipation"}
    for kind, k in fb["by_kind"].items():
        assert k["messages"] == 3 * 2 * 3  # 3 rounds (K) × 3 senders × 2 neighbours
        assert k["flower_up"] > k["payload"] > 0 and k["flower_down"] > k["payload"], kind
    assert fb["total"]["up"] > sum(
        k["flower_up"] for k in fb["by_kind"].values()
    )  # control, actions, reports
    assert result.summary["bytes_sent"]["total"] == sum(k["payload"] for k in fb["by_kind"].values())


# ---- faults --------------------------------------------------------------------------------------------


def _ctl(message: Message) -> dict:
    if message.metadata.message_type != "train" or not message.has_content():
        return {}
    ctl = message.content.get("ctl")
    return dict(ctl) if ctl is not None else {}


def test_a_client_that_raises_mid_run_is_lost_and_the_run_finishes():
    def fail_at_update_2(message, context, call_next):
        ctl = _ctl(message)
        if ctl.get("update") == 2 and ctl.get("phase") == "inbox":
            raise RuntimeError("injected failure")
        return call_next(message, context)

    config = _config("as", topology={"kind": "complete"}, train={"updates": 4})
    nodes = [AgentNode(), AgentNode(mods=[fail_at_update_2]), AgentNode()]
    result = federate(config, nodes=nodes, timeout=120)
    f, rows = result.summary["federation"], result.metrics
    assert result.summary["complete"] and len(rows) == 4
    assert f["lost_nodes"]["1"]["update"] == 2 and f["lost_nodes"]["1"]["reason"] == "error"
    assert "injected failure" in f["lost_nodes"]["1"]["detail"]
    assert f["missed_replies"] == {"inbox": 1}
    assert f["undelivered"]["policy"] > 0  # messages the others kept sending to agent 1
    assert f["substituted_actions"] == 30  # update 3: agent 1's action, every step of the horizon
    assert rows[1]["federation/lost_nodes"] == 0 and rows[2]["federation/lost_nodes"] == 1
    assert rows[3]["agent_returns"][1] is None and rows[3]["federation/agents_reporting"] == 2


def test_a_silent_client_is_lost_after_the_timeout_and_the_run_finishes():
    release = threading.Event()

    def silent_in_update_1(message, context, call_next):
        ctl = _ctl(message)
        if ctl.get("update") == 1 and ctl.get("phase") == "joint_action" and ctl.get("step") == 5:
            release.wait(30)  # stops answering until the test is over
        return call_next(message, context)

    config = _config("ps", train={"updates": 3})
    nodes = [AgentNode(mods=[silent_in_update_1]), AgentNode(), AgentNode()]
    try:
        result = federate(config, nodes=nodes, timeout=3)
    finally:
        release.set()
    f = result.summary["federation"]
    assert result.summary["complete"] and len(result.metrics) == 3
    assert f["lost_nodes"]["0"]["reason"] == "timeout" and f["lost_nodes"]["0"]["update"] == 1
    assert f["missed_replies"] == {"joint_action": 1}
    assert result.metrics[2]["agent_returns"][0] is None


def test_malformed_replies_are_rejected_and_counted():
    done: set[str] = set()

    def corrupt(message, context, call_next):
        reply = call_next(message, context)
        ctl = _ctl(message)
        u, phase, step = ctl.get("update"), ctl.get("phase"), ctl.get("step")
        if (
            u == 0 and phase == "joint_action" and step == 2 and "action" not in done
        ):  # reply: step 3's action
            done.add("action")
            reply.content["action"] = ArrayRecord({"actions": Array(np.full((1, 2), 99, dtype=np.int64))})
        elif u == 1 and phase == "joint_action" and "spoof" not in done and "msg.0.head" in reply.content:
            done.add("spoof")  # the first reply carrying messages: claim another sender
            reply.content["msg.0.head"]["sender"] = 0
        elif u == 2 and phase == "start" and "control" not in done:  # reply: step 0's action
            done.add("control")
            reply.content["ctl"] = ConfigRecord({"phase": "nonsense"})
        return reply

    config = _config("as", topology={"kind": "complete"}, train={"updates": 3})
    result = federate(config, nodes=[AgentNode(), AgentNode(), AgentNode(mods=[corrupt])], timeout=120)
    f = result.summary["federation"]
    assert result.summary["complete"] and f["lost_nodes"] == {} and done == {"action", "spoof", "control"}
    assert f["rejected"] == {"reply:bad_action": 1, "message:spoofed_sender": 1, "reply:bad_control": 1}
    assert f["substituted_actions"] == 2 and f["missed_replies"] == {"start": 1}
    assert [r["federation/relay_rejected"] for r in result.metrics] == [1, 1, 1]


# ---- configuration and the command ---------------------------------------------------------------------


def test_central_unit_tables_match_the_learners():
    config = _config("as", env={"agents": 2})
    for algo in ALGO_NAMES:
        cfg = config_from_dict({**config.to_dict(), "algo": {"name": algo}, "env": {"agents": 2}})
        learner = build_learner(cfg, 4, 2, torch.Generator().manual_seed(0))
        assert (algo in CENTRAL_UNIT_ALGOS) == hasattr(learner, "central"), algo
        assert (algo in JOINT_CONTROLLER_ALGOS) == hasattr(learner, "sample_actions"), algo


def test_unsupported_setups_are_refused():
    with pytest.raises(ConfigError, match="minibatches"):
        check_federable(_config("cl", ppo={"minibatches": 2}), "inprocess")
    with pytest.raises(ConfigError, match="backend"):
        check_federable(_config("as"), "carrier_pigeon")
    assert check_command(["federate", "--algo", "as", "--backend", "carrier_pigeon"]) == 2
    assert check_command(["federate", "--algo", "as", "--backend", "deployment"]) == 0
    assert check_command(["federate", "--algo", "as", "--timeout", "0"]) == 2
    assert check_command(["federate", "--env", "predation", "--agents", "8", "--algo", "as"]) == 0
