"""Checkpoints, and stopping a run cleanly at an update boundary on SIGTERM/SIGINT.

A checkpoint is one file, ``checkpoint.pt`` in the run directory, replaced atomically (temp file +
fsync + rename, ``experiments.io``), so a crash mid-write leaves the previous checkpoint intact. It
holds the resolved config, the number of updates done, the wall time so far and the run's state (every
agent's networks and optimisers, the channel layers' counters and transcript, the generators' states,
the topology schedule and the metrics rows so far); ``core.trainer.RunState`` decides what that is.
It also lists the code versions that trained the run (``experiments.provenance``).

Format: ``torch.save`` of plain containers, read back with ``torch.load(weights_only=True)``. The
tensors (parameters, Adam moments, the torch generator state) round-trip bit for bit, which exact
resumption needs, and the restricted unpickler accepts only tensors, numbers, strings, bytes and
containers: a tampered or foreign file raises an error instead of running code, as a plain pickle
would. Numpy generator states are dicts of Python ints, so no numpy object is pickled.
"""

from __future__ import annotations

import io
import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from confide.experiments.config import RESUMABLE_CHANGES, ConfigError, config_from_dict
from confide.experiments.io import atomic_write_bytes
from confide.experiments.provenance import UNKNOWN_CODE

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or belongs to another config; the message is one line."""


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_FILE


def run_is_complete(run_dir: str | Path) -> bool:
    """True when ``run_dir/summary.json`` exists and says ``"complete": true``."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text()).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return False


def save_checkpoint(
    path: str | Path,
    config: dict[str, Any],
    updates_done: int,
    wall_seconds: float,
    state: dict[str, Any],
    code_history: list[str],
) -> None:
    """Write a checkpoint atomically; on failure the previous one is unchanged (``ResultWriteError``).
    ``code_history``: the code versions that trained the run so far (``experiments.provenance``)."""
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "config": config,
            "updates_done": updates_done,
            "wall_seconds": wall_seconds,
            "state": state,
            "code_history": list(code_history),
        },
        buffer,
    )
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; every failure is a ``CheckpointError``."""
    p = Path(path)
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {p}") from None
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {p}: {err.strerror or err}") from err
    except Exception as err:  # the unpickler's and the zip reader's many error types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"checkpoint {p} is unreadable ({first[:120]})") from err
    keys = {"format", "config", "updates_done", "wall_seconds", "state"}
    if not isinstance(data, dict) or not keys <= set(data) or data["format"] != FORMAT:
        raise CheckpointError(f"{p} is not a confide checkpoint of format {FORMAT}")
    history = data.setdefault("code_history", [UNKNOWN_CODE])  # written before code was recorded
    if not (isinstance(history, list) and history and all(isinstance(v, str) for v in history)):
        raise CheckpointError(f"{p} has a malformed code_history")
    return data


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys where two config dicts differ, leaving out ``RESUMABLE_CHANGES``.

    Both are first read through the current config schema, so a field added to the config since the
    run was saved takes its default on both sides instead of blocking the resume. A saved config the
    schema no longer accepts (a field removed or renamed) is compared as saved, so it differs.
    """
    a, b = _flatten(_current_schema(saved)), _flatten(_current_schema(current))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)


def _current_schema(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(config_from_dict(data).to_dict()))  # as config.json has it
    except (ConfigError, TypeError, ValueError):
        return data


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


class StopRequests:
    """Turns SIGTERM and SIGINT into a request to stop at the next update boundary.

    Inside ``with StopRequests(True) as stop:`` the first signal only sets ``stop.signal``; the trainer
    finishes the update, writes a checkpoint and stops. The handler puts the previous handlers back at
    once, so a second signal acts as usual (Ctrl-C twice stops immediately). Signal handlers can only
    be set from the main thread; elsewhere (or with ``enabled=False``) this does nothing.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopRequests:
        if self.enabled:
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum)
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()
