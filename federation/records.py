"""What the federation's Flower Messages carry: confide messages, actions and reports as Flower records.

Every Flower ``Message`` of a run holds a ``RecordDict`` with a control record and the phase's records:

    "ctl"             ConfigRecord  {"phase", "update", "step", "round"} (+ "agent" in a hello reply)
    "joint"           ArrayRecord   {"actions": int64 [N, B]}        relay → node, phase joint_action
    "action"          ArrayRecord   {"actions": int64 [k, B]}        node → relay, the k rows it controls
    "msg.{k}.head"    ConfigRecord  {"sender", "receiver", "kind", "round", "order"}
    "msg.{k}"         ArrayRecord   one ``Array`` per payload array (Flower's numpy serialisation, .npy)
    "report"          MetricRecord  {"n_samples", "filled_age", "return" (agents only), "public/<name>"}
    "report.rejected" MetricRecord  {reason: count}, cumulative, as the node's ``Comms`` counted them
    "report.late"     MetricRecord  {kind: count}, cumulative
    "report.filled"   MetricRecord  {kind: count}, cumulative (receiver policy hold/zero)
    "report.status"   ConfigRecord  {"digest": public trajectory hash, "diverged": "" or why}
    "aggregate"       ConfigRecord  {"kind"} (node → relay, phase aggregate) or {"participants": [agent]}
                                    (relay → node, an inbox after a SecAgg+ or central-DP round)
    "aggregate.vector" ArrayRecord  {"params": float32 [P]}   node → relay, central DP only (never SecAgg+)
    "aggregate.mean"  ArrayRecord   {"mean": float [P]}                  relay → node, with "aggregate"

``order`` is the message's position in its sender's outgoing list (a function of the public
neighbourhood), so the relay hands the channel stack the messages in ``confide train``'s order.

The round trip is exact: ``Array`` stores dtype, shape and raw bytes (``numpy.save``), and the reader
rejects anything confide's codec could not carry (``MalformedRecords`` with a reason the relay counts).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.app import Message as FlowerMessage
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from confide.channels import Message
from confide.channels.codec import DTYPE_CODES

if TYPE_CHECKING:
    from confide.federation.grid import WireSize

CTL = "ctl"
JOINT = "joint"
ACTION = "action"
REPORT = "report"
REJECTED = "report.rejected"
LATE = "report.late"
FILLED = "report.filled"
STATUS = "report.status"
AGGREGATE = "aggregate"
AGGREGATE_VECTOR = "aggregate.vector"
AGGREGATE_MEAN = "aggregate.mean"
MSG_PREFIX = "msg."
HEAD_SUFFIX = ".head"
HELLO_TYPE = "query.hello"  # Flower message types: a query to learn each node's agent id, then "train"
TRAIN_TYPE = "train"


class Phase(StrEnum):
    """What a message is for. Relay → node: start, joint_action, inbox, stop. Node → relay: action,
    messages, report, stopped (the node's next step, whatever it was sent); aggregate: the node is
    ready for a SecAgg+ or central-DP averaging round (``secure_aggregation``, ``central_dp``)."""

    START = "start"
    JOINT_ACTION = "joint_action"
    INBOX = "inbox"
    STOP = "stop"
    ACTION = "action"
    MESSAGES = "messages"
    REPORT = "report"
    STOPPED = "stopped"
    AGGREGATE = "aggregate"


class MalformedRecords(ValueError):
    """A Flower message whose records do not parse; ``reason`` is a short key the relay counts."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Envelope:
    """One parsed Flower message of the protocol (either direction)."""

    phase: Phase
    update: int = 0
    step: int = 0
    round: int = 0
    actions: np.ndarray | None = None  # joint [N, B] (relay → node) or own rows [k, B] (node → relay)
    messages: list[tuple[int, Message]] = field(default_factory=list)  # (order, message)
    bad_messages: list[str] = field(default_factory=list)  # reasons of messages that did not parse
    report: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    aggregate_kind: str = ""  # aggregate: the message kind of the averaging round
    aggregate_vector: np.ndarray | None = None  # aggregate under central DP: the node's vector
    aggregate_mean: np.ndarray | None = None  # inbox after a SecAgg+ round: the mean (None: no mean)
    participants: list[int] = field(default_factory=list)  # the agents the mean covers


# ---- writing ----------------------------------------------------------------------------------------


def payload_record(payload: dict[str, np.ndarray]) -> ArrayRecord:
    """A confide payload as an ``ArrayRecord`` (array order kept)."""
    return ArrayRecord({name: Array(np.asarray(value, order="C")) for name, value in payload.items()})


def encode(envelope: Envelope) -> RecordDict:
    """The ``RecordDict`` of one protocol message."""
    e = envelope
    content = RecordDict()
    content[CTL] = ConfigRecord(
        {"phase": e.phase.value, "update": e.update, "step": e.step, "round": e.round}
    )
    if e.actions is not None:
        key = JOINT if e.phase == Phase.JOINT_ACTION else ACTION
        content[key] = ArrayRecord({"actions": Array(np.ascontiguousarray(e.actions, dtype=np.int64))})
    for k, (order, message) in enumerate(e.messages):
        content[f"{MSG_PREFIX}{k}{HEAD_SUFFIX}"] = ConfigRecord(
            {
                "sender": int(message.sender),
                "receiver": int(message.receiver),
                "kind": message.kind,
                "round": int(message.round),
                "order": int(order),
            }
        )
        content[f"{MSG_PREFIX}{k}"] = payload_record(message.payload)
    if e.phase == Phase.REPORT:
        content[REPORT] = MetricRecord(dict(e.report))
        content[REJECTED] = MetricRecord({k: int(v) for k, v in e.rejected.items()})
        content[LATE] = MetricRecord({k: int(v) for k, v in e.late.items()})
        content[FILLED] = MetricRecord({k: int(v) for k, v in e.filled.items()})
        content[STATUS] = ConfigRecord(dict(e.status))
    if e.phase == Phase.AGGREGATE:
        content[AGGREGATE] = ConfigRecord({"kind": e.aggregate_kind})
        if e.aggregate_vector is not None:
            content[AGGREGATE_VECTOR] = ArrayRecord(
                {"params": Array(np.ascontiguousarray(e.aggregate_vector))}
            )
    if e.phase == Phase.INBOX and e.aggregate_mean is not None:
        content[AGGREGATE] = ConfigRecord({"participants": [int(j) for j in e.participants]})
        content[AGGREGATE_MEAN] = ArrayRecord({"mean": Array(np.ascontiguousarray(e.aggregate_mean))})
    return content


def message_kinds_of_records(content: RecordDict) -> dict[str, str]:
    """``{record key: message kind}`` for the records that carry confide messages (for byte accounting)."""
    out: dict[str, str] = {}
    for key in content.keys():
        if key.startswith(MSG_PREFIX) and key.endswith(HEAD_SUFFIX):
            head = content[key]
            kind = head.get("kind") if isinstance(head, ConfigRecord) else None
            if isinstance(kind, str):
                out[key] = kind
                out[key[: -len(HEAD_SUFFIX)]] = kind
    return out


# ---- reading ----------------------------------------------------------------------------------------


def _int(record: Any, key: str, where: str) -> int:
    value = record.get(key) if isinstance(record, ConfigRecord | MetricRecord) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedRecords("bad_header", f"{where}.{key} is not an int")
    return value


def read_payload(record: Any) -> dict[str, np.ndarray]:
    """Inverse of ``payload_record``; raises ``MalformedRecords("bad_payload")`` for anything confide's
    codec could not carry (unknown dtype, a name of 0 or > 255 bytes, data that disagrees with its
    declared dtype and shape, a non-numpy serialisation)."""
    if not isinstance(record, ArrayRecord):
        raise MalformedRecords("bad_payload", "not an ArrayRecord")
    out: dict[str, np.ndarray] = {}
    for name, array in record.items():
        if not 0 < len(name.encode()) < 256:
            raise MalformedRecords("bad_payload", "array name length")
        try:
            value = array.numpy()
        except Exception as err:  # np.load's errors on bad data are of many types
            raise MalformedRecords("bad_payload", f"{name}: {type(err).__name__}") from None
        if value.dtype.name not in DTYPE_CODES or array.dtype != value.dtype.name:
            raise MalformedRecords("bad_payload", f"{name}: dtype {array.dtype}")
        if tuple(array.shape) != value.shape:
            raise MalformedRecords("bad_payload", f"{name}: shape")
        out[name] = value
    return out


def _read_messages(content: RecordDict) -> tuple[list[tuple[int, Message]], list[str]]:
    heads = sorted(
        (k for k in content.keys() if k.startswith(MSG_PREFIX) and k.endswith(HEAD_SUFFIX)),
        key=lambda k: (len(k), k),
    )
    good: list[tuple[int, Message]] = []
    bad: list[str] = []
    for key in heads:
        try:
            head = content[key]
            if not isinstance(head, ConfigRecord):
                raise MalformedRecords("bad_header", "head is not a ConfigRecord")
            kind = head.get("kind")
            if not isinstance(kind, str) or not 0 < len(kind.encode()) < 256:
                raise MalformedRecords("bad_header", "kind")
            sender, receiver = _int(head, "sender", key), _int(head, "receiver", key)
            round_, order = _int(head, "round", key), _int(head, "order", key)
            body = key[: -len(HEAD_SUFFIX)]
            if body not in content:
                raise MalformedRecords("bad_payload", "missing payload record")
            payload = read_payload(content[body])
            good.append((order, Message(sender, receiver, kind, round_, payload)))
        except MalformedRecords as err:
            bad.append(err.reason)
    return good, bad


def _counts(record: Any, name: str) -> dict[str, int]:
    if not isinstance(record, MetricRecord):
        raise MalformedRecords("bad_report", f"{name} is not a MetricRecord")
    out = {}
    for key, value in record.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedRecords("bad_report", f"{name}.{key}")
        out[key] = value
    return out


def decode(content: RecordDict) -> Envelope:
    """Parse a protocol message; raises ``MalformedRecords`` if its control record, actions or report
    are unusable. Individual confide messages that do not parse are listed in ``bad_messages``."""
    ctl = content.get(CTL)
    if not isinstance(ctl, ConfigRecord):
        raise MalformedRecords("bad_control", "no ctl ConfigRecord")
    try:
        phase = Phase(ctl.get("phase"))
    except ValueError:
        raise MalformedRecords("bad_control", "unknown phase") from None
    e = Envelope(phase, _int(ctl, "update", CTL), _int(ctl, "step", CTL), _int(ctl, "round", CTL))
    key = JOINT if phase == Phase.JOINT_ACTION else ACTION
    if phase in (Phase.JOINT_ACTION, Phase.ACTION):
        record = content.get(key)
        if not isinstance(record, ArrayRecord) or list(record.keys()) != ["actions"]:
            raise MalformedRecords("bad_action", "no actions record")
        actions = read_payload(record)["actions"]
        if actions.ndim != 2 or actions.dtype != np.int64:
            raise MalformedRecords("bad_action", "actions must be int64 [k, B]")
        e.actions = actions
    if phase in (Phase.MESSAGES, Phase.INBOX):
        e.messages, e.bad_messages = _read_messages(content)
    if phase == Phase.REPORT:
        report = content.get(REPORT)
        if not isinstance(report, MetricRecord):
            raise MalformedRecords("bad_report", "no report MetricRecord")
        for name, value in report.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise MalformedRecords("bad_report", name)
            e.report[name] = value
        if "n_samples" not in e.report:
            raise MalformedRecords("bad_report", "n_samples missing")
        e.rejected = _counts(content.get(REJECTED), REJECTED)
        e.late = _counts(content.get(LATE), LATE)
        e.filled = _counts(content.get(FILLED), FILLED)
        status = content.get(STATUS)
        if not isinstance(status, ConfigRecord) or not all(isinstance(v, str) for v in status.values()):
            raise MalformedRecords("bad_report", "status")
        e.status = dict(status)
    if phase == Phase.AGGREGATE:
        kind = (
            content.get(AGGREGATE).get("kind") if isinstance(content.get(AGGREGATE), ConfigRecord) else None
        )
        if not isinstance(kind, str) or not kind:
            raise MalformedRecords("bad_secure", "kind")
        e.aggregate_kind = kind
        if AGGREGATE_VECTOR in content:
            vector = read_payload(content.get(AGGREGATE_VECTOR)).get("params")
            if vector is None or vector.ndim != 1 or vector.dtype.kind != "f":
                raise MalformedRecords("bad_secure", "vector must be a float vector")
            e.aggregate_vector = vector
    if phase == Phase.INBOX and AGGREGATE in content:
        _read_aggregate_mean(content, e)
    return e


def _read_aggregate_mean(content: RecordDict, e: Envelope) -> None:
    head = content.get(AGGREGATE)
    participants = head.get("participants") if isinstance(head, ConfigRecord) else None
    if not isinstance(participants, list) or not all(
        isinstance(j, int) and not isinstance(j, bool) for j in participants
    ):
        raise MalformedRecords("bad_secure", "participants")
    mean = read_payload(content.get(AGGREGATE_MEAN)).get("mean")
    if mean is None or mean.ndim != 1 or mean.dtype.kind != "f":
        raise MalformedRecords("bad_secure", "mean must be a float vector")
    e.participants, e.aggregate_mean = list(participants), mean


def hello_reply(agent: int) -> RecordDict:
    return RecordDict({CTL: ConfigRecord({"agent": int(agent)})})


def read_hello(content: RecordDict) -> int:
    ctl = content.get(CTL)
    return _int(ctl, "agent", CTL)


def count_reasons(reasons: Iterable[str], prefix: str = "") -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        out[prefix + r] = out.get(prefix + r, 0) + 1
    return out


def as_messages(pairs: Sequence[tuple[int, Message]]) -> list[Message]:
    return [m for _, m in pairs]


class FlowerBytes:
    """Flower wire bytes per direction, per protocol phase and per confide message kind (a grid
    observer; thread-safe: replies are serialised on the nodes' threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.by_phase: Counter[str] = Counter()
        self.by_kind: dict[str, Counter[str]] = {"up": Counter(), "down": Counter()}
        self.kind_messages: dict[str, Counter[str]] = {"up": Counter(), "down": Counter()}
        self.envelope: Counter[str] = Counter()

    def __call__(self, direction: str, message: FlowerMessage, size: WireSize) -> None:
        phase = "error"
        kinds: dict[str, str] = {}
        if message.has_content():
            ctl = message.content.get(CTL)
            phase = str(ctl.get("phase", "hello")) if ctl is not None else "?"
            if ctl is None and RECORD_KEY_CONFIGS in message.content.config_records:
                phase = "secagg"  # Flower's SecAgg+ stages (keys, shares, masked vectors)
            kinds = message_kinds_of_records(message.content)
        with self._lock:
            self.total[direction] += size.total
            self.messages[direction] += 1
            self.by_phase[f"{direction}/{phase}"] += size.total
            self.envelope[direction] += size.envelope
            for key, b in size.records.items():
                if key in kinds:
                    self.by_kind[direction][kinds[key]] += b
                    if not key.endswith(".head"):
                        self.kind_messages[direction][kinds[key]] += 1
