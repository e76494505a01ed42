"""The ``ServerApp`` that Flower's own runtimes load: Ray simulation (``flwr run`` on a
SuperLink in simulation mode) and deployment (SuperLink + SuperNodes). ``backends.py`` writes a Flower App
directory whose components point here.

``server_app`` runs the same ``Relay`` as the in-process backend and writes the run's result files
itself (``serve``): its process is Flower's, not ``confide federate``'s. The ClientApp is
``forwarder.client_app``: it hands each message, in Flower's wire format, to the node's ``NodeHost``
(``node_host.py``), where the same ``AgentNode`` as in-process keeps the node's state between messages.

Everything a run needs travels in the run config (``[tool.flwr.app.config]``): the confide config as
JSON, the output directory, the backend's name, the timeout and the SecAgg+ / central-DP settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run

from confide.core.registry import build_learner
from confide.core.trainer import make_run_env
from confide.experiments.config import config_from_dict
from confide.experiments.io import append_jsonl, atomic_write_json, atomic_write_jsonl
from confide.federation.central_dp import CentralDpSettings
from confide.federation.client import RUN_CONFIG_KEY, node_count
from confide.federation.grid import WireObserver, wire_size
from confide.federation.secure_aggregation import (
    CENTRAL_DP_RUN_CONFIG_KEY,
    SECAGG_RUN_CONFIG_KEY,
    SecAggSettings,
)
from confide.federation.server import FederationError, Relay

OUT_KEY = "confide-out"  # run config: the run directory (on the ServerApp's machine)
BACKEND_KEY = "confide-backend"
TIMEOUT_KEY = "confide-timeout"


class MeteredGrid(Grid):
    """A Flower ``Grid`` that reports every message's wire size to ``observer`` (down when pushed, up
    when pulled), as ``InProcessGrid`` does for the in-process backend."""

    def __init__(self, inner: Grid, observer: WireObserver) -> None:
        self.inner, self.observer = inner, observer

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self.inner.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        for message in messages:
            self.observer("down", message, wire_size(message))
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self.inner.pull_messages(message_ids))
        for reply in replies:
            self.observer("up", reply, wire_size(reply))
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        for message in messages:
            self.observer("down", message, wire_size(message))
        replies = list(self.inner.send_and_receive(messages, timeout=timeout))
        for reply in replies:
            self.observer("up", reply, wire_size(reply))
        return replies


def wait_for_nodes(grid: Grid, count: int, timeout: float) -> None:
    """SuperNodes connect over time: wait until ``count`` are there (``FederationError`` after timeout)."""
    deadline = time.monotonic() + timeout
    while len(list(grid.get_node_ids())) < count:
        if time.monotonic() > deadline:
            raise FederationError(
                f"{len(list(grid.get_node_ids()))} of {count} nodes connected in {timeout}s"
            )
        time.sleep(0.5)


def serve(grid: Grid, context: Context) -> None:
    """The ServerApp's main on Flower's runtimes: the in-process relay, results written to the run dir."""
    from confide.federation.runner import federation_summary, incomplete_summary, start_files

    rc = context.run_config
    config = config_from_dict(json.loads(str(rc[RUN_CONFIG_KEY])))
    secagg = (
        SecAggSettings(**json.loads(str(rc[SECAGG_RUN_CONFIG_KEY])))
        if rc.get(SECAGG_RUN_CONFIG_KEY)
        else None
    )
    dp_json = rc.get(CENTRAL_DP_RUN_CONFIG_KEY)
    central_dp = CentralDpSettings(**json.loads(str(dp_json))) if dp_json else None
    out, backend, timeout = Path(str(rc[OUT_KEY])), str(rc[BACKEND_KEY]), float(rc[TIMEOUT_KEY])
    torch.set_num_threads(config.train.threads)
    started = time.perf_counter()
    env = make_run_env(config)
    kinds = build_learner(config, env.state_dim, env.n_actions, torch.Generator()).message_kinds
    n_nodes = node_count(config)
    start_files(out, config, backend)  # also on another machine, where nothing prepared ``out``

    def on_update(row: dict[str, Any]) -> None:  # one appended row per update; rewritten at the end
        append_jsonl(out / "metrics.jsonl", [row])
        atomic_write_json(out / "summary.json", incomplete_summary(config, backend, len(relay.metrics)))

    relay = Relay(config, kinds, env.n_actions, n_nodes, timeout, on_update, secagg, central_dp)
    wait_for_nodes(grid, n_nodes, timeout)
    relay.main(MeteredGrid(grid, relay.flower_bytes), context)
    summary = federation_summary(config, env, relay, kinds, time.perf_counter() - started, backend, None)
    summary["federation"]["transcript_digest"] = relay.tap.transcript_digest()
    atomic_write_jsonl(out / "metrics.jsonl", relay.metrics)  # durable before the run says complete
    atomic_write_json(out / "summary.json", summary)


server_app = ServerApp()
server_app.main()(serve)
