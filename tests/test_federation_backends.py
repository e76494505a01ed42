"""Flower's own runtimes, on loopback: the Ray simulation (``flwr run`` on a SuperLink in simulation
mode) and deployment (SuperLink + SuperNodes + node hosts). Slow (minutes: Ray's start-up, and a fresh
ClientApp process per message in deployment), so opt-in:

    .venv/bin/python -m pytest tests/test_federation_backends.py -m flower_runtime

A tiny run (matrix game, N = 2, 1 update, batch 2) must equal ``confide train`` and leave no process
behind."""

from __future__ import annotations

import importlib.util
import os
import sys
import time

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")

import pytest

from confide.core.trainer import train
from confide.experiments.config import config_from_dict
from confide.federation.backends import Processes, write_app
from confide.federation.runner import federate


@pytest.fixture
def only_when_asked(request):
    if "flower_runtime" not in (request.config.getoption("-m") or ""):
        pytest.skip("slow Flower runtime test: run with -m flower_runtime")


def _config(algo: str = "as"):
    return config_from_dict(
        {
            "env": {"name": "matrix", "agents": 2},
            "algo": {"name": algo},
            "train": {"updates": 1, "batch": 2, "seed": 3, "checkpoint_every": 0},
        }
    )


@pytest.mark.flower_runtime
@pytest.mark.parametrize("backend", ["ray", "deployment"])
def test_flower_runtime_run_equals_train_and_stops_every_process(backend, tmp_path, only_when_asked):
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install -c constraints.txt -e '.[ray]')")
    config = _config()
    expected = train(config, tmp_path / "train")
    got = federate(config, tmp_path / backend, backend, timeout=600)
    assert got.summary["backend"] == backend
    for row, ref in zip(got.metrics, expected.metrics, strict=True):
        for key, value in row.items():
            if key in ref:
                assert value == ref[key], key
    assert got.transcript_digest == expected.transcript_digest  # the same messages, byte for byte
    assert got.summary["bytes_sent"] == expected.summary["bytes_sent"]
    fb = got.summary["flower_bytes"]
    assert fb["total"]["up"] > 0 and fb["total"]["down"] > 0  # measured on Flower's own grid
    processes = got.summary["federation"]["processes"]
    assert processes["tracked"] >= 2 and processes["left_alive"] == 0


def test_process_tracker_stops_descendants_it_did_not_start_directly(tmp_path):
    """A child that detaches into its own session (as Flower's SuperExec children do) is still ended."""
    processes = Processes(tmp_path, dict(os.environ))
    script = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True); "
        "time.sleep(300)"
    )
    processes.start("parent", [sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while len(processes.alive()) < 2 and time.monotonic() < deadline:
        processes.sample()
        time.sleep(0.2)
    assert len(processes.alive()) == 2
    assert processes.stop(grace=5) == 2 and processes.alive() == []


def test_the_app_directory_names_flowers_components(tmp_path):
    write_app(tmp_path, {"confide-config": '{"a": "b"}', "confide-timeout": 5.0})
    text = (tmp_path / "pyproject.toml").read_text()
    assert 'serverapp = "confide_flower_app_server:server_app"' in text
    assert '"confide-config" = "{\\"a\\": \\"b\\"}"' in text
    assert "import torch" not in (tmp_path / "confide_flower_app_client.py").read_text()
