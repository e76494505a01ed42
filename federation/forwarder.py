"""The ClientApp Flower's runtimes load on a node: a thin forwarder to the node's ``NodeHost``.

Deployment starts a fresh ``flwr-clientapp`` process for every message, so this module imports only
Flower and the wire format (not torch, not the learners): the node's state and compute live in its
``NodeHost`` (``node_host.py``), a daemon on the node's machine (deployment) or a named Ray actor (Ray
simulation). Each message crosses to the host in Flower's wire format; the host's reply comes back the
same way and is returned as the reply to the original message.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Client
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from confide.federation.grid import Wire, deflate_message, from_wire

HOST_KEY_ENV = "CONFIDE_NODE_HOST_KEY"  # shared secret between a node's forwarder and its daemon
NODE_HOST_CONFIG_KEY = "node-host"  # node config: the daemon's HOST:PORT (deployment)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a node host address is HOST:PORT, got {address!r}")
    return host, int(port)


def host_key() -> bytes:
    key = os.environ.get(HOST_KEY_ENV, "")
    if not key:
        raise RuntimeError(f"{HOST_KEY_ENV} is not set (the node host's shared secret)")
    return key.encode()


def call_daemon(address: str, *args: Any) -> Wire:
    """One request to the node's daemon, its reply (or its exception, re-raised)."""
    with Client(parse_address(address), authkey=host_key()) as conn:
        conn.send(args)
        ok, value = conn.recv()
    if not ok:
        raise RuntimeError(f"node host: {value}")
    return value


_RAY_HOST: Any = None
_RAY_HANDLES: dict[str, Any] = {}  # a named actor with no live handle is garbage-collected: keep them


def _ray_host(context: Context) -> Any:
    """The node's named Ray actor (created by the first message that reaches any simulation actor)."""
    global _RAY_HOST
    import ray

    from confide.federation.node_host import NodeHost

    if _RAY_HOST is None:
        _RAY_HOST = ray.remote(num_cpus=0)(NodeHost)
    name = f"confide-node-{context.run_id}-{context.node_id}"
    if name not in _RAY_HANDLES:
        _RAY_HANDLES[name] = _RAY_HOST.options(name=name, get_if_exists=True).remote()
    return _RAY_HANDLES[name]


def forward(message: Message, context: Context) -> Message:
    """Hand ``message`` to the node's host; its reply, as a reply to ``message``."""
    args = (
        deflate_message(message),
        context.run_id,
        context.node_id,
        dict(context.node_config),
        dict(context.run_config),
    )
    address = context.node_config.get(NODE_HOST_CONFIG_KEY)
    if address:
        reply_wire = call_daemon(str(address), *args)
    else:
        import ray

        reply_wire = ray.get(_ray_host(context).handle.remote(*args))
    reply = from_wire(reply_wire)
    if reply.has_error():
        return Message(reply.error, reply_to=message)
    return Message(reply.content if reply.has_content() else RecordDict(), reply_to=message)


client_app = ClientApp()
client_app.query("hello")(forward)
client_app.train()(forward)
