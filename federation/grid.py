"""An in-process Flower ``Grid``: real ``flwr.app.Message``s in Flower's wire format, no Ray, no sockets.

Flower 1.41's transports move a ``Message`` as content-addressed objects: the message, its
``RecordDict``, each record, each ``Array`` and each ``ArrayChunk`` is *deflated* to bytes (a header naming
its type and its children's SHA-256 ids, then a protobuf/JSON/raw body) and pushed once per distinct id;
the receiver *inflates* the tree back. This grid does exactly that for every message in both directions,
so what a ClientApp or the ServerApp receives was rebuilt from Flower's own bytes, and those bytes are
what ``WireSize`` counts. Each node runs its ``ClientApp`` on its own thread, one message at a time (a
SuperNode's behaviour); a ClientApp that raises answers with an error ``Message``, as Flower's runtime
does; a node that does not answer within ``send_and_receive``'s timeout simply has no reply.

The grid depends on non-public Flower modules (pinned ``flwr==1.41.0``; ``tests/test_federation.py``
fails loudly if any of them moves): ``flwr.supercore.task_identity.TaskIdentity`` (a message built
outside a Flower runtime needs the run identity), ``flwr.supercore.inflatable`` (deflate/inflate of the
object tree), ``flwr.supercore.run.Run`` and ``flwr.common.constant`` (``SUPERLINK_NODE_ID``,
``ErrorCode``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_object import (
    InflatableObject,
    get_all_nested_objects,
    no_object_id_recompute,
)
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

Direction = str  # "down" (relay → node) or "up" (node → relay)


@dataclass(frozen=True)
class WireSize:
    """Bytes of one message in Flower's wire format.

    ``total``: the distinct deflated objects (what Flower's transport pushes, each id once).
    ``envelope``: the ``Message`` and ``RecordDict`` objects (metadata and record references).
    ``records``: per top-level record, the record and its descendants, counted per reference (so two
    records carrying identical arrays are each charged in full; ``total`` counts the shared chunk once).
    """

    total: int
    envelope: int
    records: dict[str, int]


@dataclass(frozen=True)
class Wire:
    """A message on the wire: its root object id and every object's deflated bytes."""

    root: str
    objects: dict[str, bytes]
    size: WireSize


def to_wire(message: Message) -> Wire:
    """Deflate ``message`` into Flower's object tree (message id = the root object id, as Flower's
    HTTP grid and SuperNode set it)."""
    wire = deflate_message(message)
    message.metadata.__dict__["_message_id"] = wire.root
    return wire


def wire_size(message: Message) -> WireSize:
    """The bytes ``to_wire`` would produce, leaving the message untouched (for a real Flower grid)."""
    return deflate_message(message).size


def deflate_message(message: Message) -> Wire:
    """``to_wire`` without setting the message id (a message a Flower runtime delivered keeps its own)."""
    with no_object_id_recompute():
        objects = get_all_nested_objects(message)
        contents = {oid: obj.deflate() for oid, obj in objects.items()}
        root = message.object_id
        records: dict[str, int] = {}
        envelope = len(contents[root])
        if message.has_content():
            envelope += len(contents[message.content.object_id])
            for key, record in message.content.items():
                records[key] = _tree_bytes(record, contents)
    return Wire(root, contents, WireSize(sum(len(b) for b in contents.values()), envelope, records))


def _tree_bytes(obj: InflatableObject, contents: dict[str, bytes]) -> int:
    return len(contents[obj.object_id]) + sum(_tree_bytes(c, contents) for c in (obj.children or {}).values())


def from_wire(wire: Wire) -> Message:
    """Inflate a message from its objects (a fresh object graph: nothing is shared with the sender)."""
    message = inflate_object_from_contents(wire.root, dict(wire.objects))
    if not isinstance(message, Message):
        raise TypeError(f"root object is a {type(message).__name__}, not a Message")
    message.metadata.__dict__["_message_id"] = wire.root
    return message


WireObserver = Callable[[Direction, Message, WireSize], None]


class _Node:
    """One SuperNode: a ClientApp, its Context, and a thread that handles one message at a time."""

    def __init__(self, node_id: int, app: ClientApp, context: Context, grid: InProcessGrid) -> None:
        self.node_id, self.app, self.context, self.grid = node_id, app, context, grid
        self.inbox: queue.SimpleQueue[Wire | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"flower-node-{node_id}", daemon=True)

    def _loop(self) -> None:
        while (wire := self.inbox.get()) is not None:
            try:
                message = self.grid._from_wire(wire)
            except Exception:  # bytes that do not inflate: there is nothing to reply to
                continue
            try:
                reply = self.app(message, self.context)
                if not isinstance(reply, Message) or reply.metadata.reply_to_message_id != wire.root:
                    raise TypeError("the ClientApp did not return a reply to the message")
            except Exception as ex:  # Flower's runtime turns any exception into an error reply
                reason = f"{type(ex)}:<'{ex}'>"
                reply = Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=message)
            self.grid._deliver_reply(wire.root, self.grid._to_wire(reply), reply)


class InProcessGrid(Grid):
    """A ``Grid`` over in-process nodes, with Flower's serialisation on every hop.

    Args:
        nodes: ``(node_id, client_app, node_config)`` per node; node ids must differ from the SuperLink's.
        run_config: the run's config (every node's ``Context.run_config``).
        observer: called with ``(direction, message, WireSize)`` for every message serialised
            (from the pushing thread for "down", from the node's thread for "up").
    Use as a context manager: it sets Flower's task identity on entry and restores it on exit.
    """

    def __init__(
        self,
        nodes: Sequence[tuple[int, ClientApp, dict[str, Any]]],
        run_config: dict[str, Any],
        run_id: int = 1,
        observer: WireObserver | None = None,
    ) -> None:
        self._run: Run | None = None
        self.run_id = run_id
        self.observer = observer
        self._nodes: dict[int, _Node] = {}
        for node_id, app, node_config in nodes:
            if node_id == SUPERLINK_NODE_ID or node_id in self._nodes:
                raise ValueError(f"node id {node_id} is taken")
            context = Context(run_id, node_id, dict(node_config), RecordDict(), dict(run_config))
            self._nodes[node_id] = _Node(node_id, app, context, self)
        self._cond = threading.Condition()
        self._replies: dict[str, Wire] = {}  # reply_to id → the reply on the wire
        self._abandoned: set[str] = set()  # ids whose send_and_receive timed out
        self.late_replies = 0
        self._timing_lock = threading.Lock()
        self.codec_seconds = 0.0  # time spent deflating and inflating messages
        self.codec_calls = 0
        self._identity: tuple[Any, Any, Any] | None = None

    def _to_wire(self, message: Message) -> Wire:
        started = time.perf_counter()
        wire = to_wire(message)
        self._timed(started)
        return wire

    def _from_wire(self, wire: Wire) -> Message:
        started = time.perf_counter()
        message = from_wire(wire)
        self._timed(started)
        return message

    def _timed(self, started: float) -> None:
        with self._timing_lock:
            self.codec_seconds += time.perf_counter() - started
            self.codec_calls += 1

    # -- lifecycle --
    def __enter__(self) -> InProcessGrid:
        self._identity = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, self.run_id, SUPERLINK_NODE_ID
        self.set_run(Run.create_empty(self.run_id))
        for node in self._nodes.values():
            node.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, join_seconds: float = 1.0) -> None:
        """Stop the nodes' threads (a node stuck in its ClientApp is left behind; it is a daemon)."""
        for node in self._nodes.values():
            node.inbox.put(None)
        deadline = time.monotonic() + join_seconds
        for node in self._nodes.values():
            if node.thread.is_alive():
                node.thread.join(max(0.0, deadline - time.monotonic()))
        if self._identity is not None:
            TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = self._identity
            self._identity = None

    # -- Grid API --
    def set_run(self, run: Run) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        self._run = run

    @property
    def run(self) -> Run:
        if self._run is None:
            raise RuntimeError("the grid has no run; use it as a context manager")
        return Run(**vars(self._run))

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            node = self._nodes.get(message.metadata.dst_node_id)
            if node is None:
                raise ValueError(f"no node {message.metadata.dst_node_id}")
            wire = self._to_wire(message)
            if self.observer is not None:
                self.observer("down", message, wire.size)
            node.inbox.put(wire)
            ids.append(wire.root)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        with self._cond:
            wires = [self._replies.pop(i) for i in message_ids if i in self._replies]
        return [self._from_wire(w) for w in wires]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        ids = list(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not all(i in self._replies for i in ids):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._abandoned.update(i for i in ids if i not in self._replies)
                    break
                self._cond.wait(left)
        return self.pull_messages(ids)

    def _deliver_reply(self, reply_to: str, wire: Wire, reply: Message) -> None:
        if self.observer is not None:
            self.observer("up", reply, wire.size)
        with self._cond:
            if reply_to in self._abandoned:
                self._abandoned.discard(reply_to)
                self.late_replies += 1
                return
            self._replies[reply_to] = wire
            self._cond.notify_all()
