"""Flower's own runtimes for one run on this machine, on loopback: ``ray`` (a SuperLink in simulation
mode; ``flwr run`` submits the app and Flower's Ray backend runs the ClientApps) and ``deployment`` (a
SuperLink, one SuperNode per node and, beside each, the node's ``NodeHost`` daemon). Both load
``flower_app`` (the relay as ServerApp, the forwarding ClientApp); the ServerApp writes the run's files.

Every process started here is stopped here, by PID: a tracker records the started processes and each
descendant they spawn (with its start time, so a reused PID is never hit), and on exit every one still
alive is terminated (SuperLinks, SuperNodes, node hosts, ``flwr-serverapp``, ``flwr-clientapp``,
``flwr-simulation`` and the Ray processes it starts, which Flower puts in sessions of their own).
Telemetry, update checks and
runtime dependency installation are switched off (the last would ``uv sync`` the app's dependencies:
a CUDA torch). The recipe for several machines is in ``docs/federation.md``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from confide.core.trainer import RunResult
from confide.experiments.config import RunConfig
from confide.experiments.io import atomic_write_json, read_jsonl
from confide.federation.client import node_count
from confide.federation.flower_app import BACKEND_KEY, OUT_KEY, TIMEOUT_KEY
from confide.federation.forwarder import HOST_KEY_ENV, NODE_HOST_CONFIG_KEY
from confide.federation.server import FederationError

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
CONNECTION = "confide"  # the SuperLink connection's name in FLWR_HOME/config.toml
APP_MODULE = "confide_flower_app"
STARTUP_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Processes:
    """Processes this run started and every descendant they spawn (Flower's SuperExec starts its
    children in new sessions, and Ray's processes outlive their parent), tracked by PID and start time
    so that ``stop`` ends exactly those."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir, self.env = log_dir, env
        self.started: list[subprocess.Popen] = []
        self.seen: dict[int, str] = {}  # pid → start time (field 22 of /proc/pid/stat)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler = threading.Thread(
            target=self._sample_loop, name="confide-process-tracker", daemon=True
        )
        self._sampler.start()

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, env=env or self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        with self._lock:
            self.started.append(process)
            self.seen[process.pid] = _start_time(process.pid) or ""
        return process

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        """Record the live descendants of the started processes (and of what was recorded before)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                parent = _parent(int(entry.name))
                if parent is not None:
                    children.setdefault(parent, []).append(int(entry.name))
        with self._lock:
            stack = [pid for pid, t in self.seen.items() if _start_time(pid) == t]
            while stack:
                for child in children.get(stack.pop(), []):
                    if child not in self.seen:
                        self.seen[child] = _start_time(child) or ""
                        stack.append(child)

    def alive(self) -> list[int]:
        with self._lock:
            return [pid for pid, t in self.seen.items() if t and _start_time(pid) == t]

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM every tracked live process, SIGKILL what is left after ``grace``; how many were alive."""
        self.sample()
        self._stop.set()
        members = self.alive()
        for pid in members:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.2)
        for pid in self.alive():
            _signal(pid, signal.SIGKILL)
        for process in self.started:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return len(members)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; the name may hold spaces


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields and fields[0] != "Z" else None


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def write_app(app_dir: Path, run_config: dict[str, Any]) -> None:
    """A Flower App directory whose components are ``flower_app``'s, with the run's config baked in."""
    app_dir.mkdir(parents=True, exist_ok=True)
    config_lines = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in run_config.items())
    (app_dir / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "confide-federation"
version = "1.0.0"
description = "confide agents as Flower ClientApps, the relay as the ServerApp"
license = "MIT"
dependencies = []  # confide is installed where the app runs; nothing is installed at run time

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "confide"

[tool.flwr.app.components]
serverapp = "{APP_MODULE}_server:server_app"
clientapp = "{APP_MODULE}_client:client_app"

[tool.flwr.app.config]
{config_lines}
"""
    )
    (app_dir / f"{APP_MODULE}_server.py").write_text(
        '"""The ServerApp Flower loads: confide.federation.flower_app\'s."""\n\n'
        "from confide.federation import flower_app\n\n"
        "server_app = flower_app.server_app\n"
    )
    (app_dir / f"{APP_MODULE}_client.py").write_text(  # light: a process per message in deployment
        '"""The ClientApp Flower loads: confide.federation.forwarder\'s."""\n\n'
        "from confide.federation import forwarder\n\n"
        "client_app = forwarder.client_app\n"
    )


def write_deployment_app(
    app_dir: Path, config: RunConfig, run_config: dict[str, Any], out: str, timeout: float
) -> None:
    """The Flower App of one run for a deployment on several machines (``confide federate --write-app``);
    ``out`` is the run directory on the SuperLink's machine, where the ServerApp runs."""
    write_app(app_dir, {**run_config, OUT_KEY: out, BACKEND_KEY: "deployment", TIMEOUT_KEY: timeout})


def _wait_healthy(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FederationError(f"{what} exited with status {process.returncode} (see its log)")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise FederationError(f"{what} did not become healthy in {STARTUP_SECONDS:.0f}s")


def run_external(
    backend: str, config: RunConfig, run_config: dict[str, Any], run_dir: str | Path | None, timeout: float
) -> RunResult:
    """One run on Flower's ``ray`` or ``deployment`` runtime on loopback; the ServerApp writes ``run_dir``."""
    from confide.federation.runner import start_files

    out = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="confide_federate_"))
    out = out.resolve()
    start_files(out, config, backend)
    flower = out / "flower"
    home, logs = flower / "home", flower / "logs"
    home.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    write_app(flower / "app", {**run_config, OUT_KEY: str(out), BACKEND_KEY: backend, TIMEOUT_KEY: timeout})
    port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        **FLOWER_ENV,
        "FLWR_HOME": str(home),
        HOST_KEY_ENV: secrets.token_hex(16),
        "PATH": path,
    }
    n_nodes = node_count(config)
    processes = Processes(logs, env)
    started = time.perf_counter()
    try:
        superlink = [
            _bin("flower-superlink"),
            "--insecure",
            "--isolation",
            "subprocess",
            "--host",
            "127.0.0.1",
        ]
        superlink += [
            "--port",
            str(port),
            "--database",
            str(flower / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ]
        if backend == "ray":
            superlink.append("--simulation")
        link = processes.start("superlink", superlink)
        _wait_healthy(port, link, "flower-superlink")
        submit = [_bin("flwr"), "run", str(flower / "app"), CONNECTION, "--stream"]
        if backend == "ray":
            submit += ["--federation-config", f"num-supernodes={n_nodes}"]
        else:
            _start_nodes(processes, n_nodes, port)
        with open(logs / "flwr-run.log", "ab") as log:
            done = subprocess.run(
                submit, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout * 4 + 600
            )
        if done.returncode != 0:
            raise FederationError(
                f"flwr run exited with status {done.returncode} (see {logs / 'flwr-run.log'})"
            )
    finally:
        stopped = processes.stop()
    summary = json.loads((out / "summary.json").read_text())
    if "flower_bytes" not in summary:
        raise FederationError(f"the {backend} run did not finish (see {logs})")
    summary["federation"]["launch_wall_seconds"] = time.perf_counter() - started
    summary["federation"]["processes"] = {
        "tracked": len(processes.seen),
        "stopped_at_end": stopped,
        "left_alive": len(processes.alive()),
    }
    atomic_write_json(out / "summary.json", summary)
    metrics = read_jsonl(out / "metrics.jsonl")
    return RunResult(summary, metrics, summary["federation"]["transcript_digest"])


def _start_nodes(processes: Processes, n_nodes: int, superlink_port: int) -> None:
    """Per node: its ``NodeHost`` daemon, then a SuperNode whose node config names it."""
    for k in range(n_nodes):
        host_port = free_port()
        daemon = [sys.executable, "-m", "confide.federation.node_host", "--listen", f"127.0.0.1:{host_port}"]
        processes.start(f"node-host-{k}", daemon)
        node_config = f'agent-id={k} {NODE_HOST_CONFIG_KEY}="127.0.0.1:{host_port}"'
        supernode = [_bin("flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{superlink_port}"]
        supernode += ["--node-config", node_config, "--host", "127.0.0.1", "--port", str(free_port())]
        processes.start(f"supernode-{k}", supernode)
