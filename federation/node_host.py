"""Where a node's private state lives on the Ray and deployment backends: a ``NodeHost`` that holds one
``AgentNode`` (the same ClientApp as in-process) for the whole run.

A node's learner update is a synchronous function that runs across many Flower messages (one per env
step and exchange round), so its worker thread must outlive each message. Flower's runtimes do not
keep a ClientApp alive that long: deployment starts a fresh ``flwr-clientapp`` process per message, and
the Ray simulation may hand a node's messages to any of its actors. So the ClientApp they run
(``flower_app.client_app``) is a thin forwarder, and the node lives in a ``NodeHost``:

* Ray simulation: a named Ray actor per node (``confide-node-<run>-<node>``), created on the node's first
  message, reachable from every simulation actor, gone when the run's actors end;
* deployment: a daemon process on the node's machine (``python -m confide.federation.node_host
  --listen HOST:PORT``, authenticated by ``CONFIDE_NODE_HOST_KEY``), named in the SuperNode's node config
  (``node-host``); the forwarder reaches it over a local socket.

Messages cross to the host in Flower's wire format (``grid.to_wire``), so the host rebuilds exactly what
Flower delivered; its reply goes back the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing.connection import Listener
from typing import Any

import torch
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from confide.federation.client import RUN_CONFIG_KEY, AgentNode
from confide.federation.forwarder import host_key, parse_address
from confide.federation.grid import Wire, from_wire, to_wire


def set_task_identity(run_id: int, node_id: int) -> None:
    """What Flower's runtime sets in a ClientApp process before it builds a ``Message``."""
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, node_id


class NodeHost:
    """One node's ``AgentNode`` and ``Context`` for the whole run."""

    def __init__(self) -> None:
        self.node = AgentNode()
        self.context: Context | None = None

    def handle(
        self, wire: Wire, run_id: int, node_id: int, node_config: dict[str, Any], run_config: dict[str, Any]
    ) -> Wire:
        """Run the node's ClientApp on one message; exceptions propagate (the forwarder re-raises them,
        and Flower's runtime turns them into an error reply)."""
        set_task_identity(run_id, node_id)
        if self.context is None:
            threads = json.loads(str(run_config[RUN_CONFIG_KEY]))["train"]["threads"]
            torch.set_num_threads(int(threads))
            self.context = Context(run_id, node_id, dict(node_config), RecordDict(), dict(run_config))
        reply = self.node.app(from_wire(wire), self.context)
        return to_wire(reply)

    def close(self) -> None:
        self.node.close()


# ---- deployment: a daemon per node ---------------------------------------------------------------------


def serve_daemon(address: str) -> None:
    """Serve one node until its run stops (a ``stop`` reaches the node) or the process is terminated."""
    host = NodeHost()
    with Listener(parse_address(address), authkey=host_key()) as listener:
        print(f"confide node host listening on {address}", flush=True)
        while True:
            with listener.accept() as conn:
                args = conn.recv()
                try:
                    conn.send((True, host.handle(*args)))
                except Exception as err:  # reported to the forwarder, which raises it in the ClientApp
                    conn.send((False, f"{type(err).__name__}: {err}"))
            worker = host.node.worker
            if worker is not None and not worker._thread.is_alive():  # the run is over for this node
                break
    host.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m confide.federation.node_host", description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT for the node's forwarder (loopback)")
    args = parser.parse_args(argv)
    try:
        parse_address(args.listen)
        host_key()
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    serve_daemon(args.listen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
