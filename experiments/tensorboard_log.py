"""A run's metrics as TensorBoard event files (``train.tensorboard``, the ``--tensorboard`` flag).

Every numeric entry of an update's metrics row becomes a scalar at step = update; a list (per-agent
returns) becomes one scalar per agent. The events go to ``<run dir>/tensorboard``, so
``tensorboard --logdir runs/<sweep>`` shows every run of a sweep side by side. A resumed run purges the
events past its checkpoint (written before an interruption), and a fresh run all earlier ones in its
directory, so the curves have no doubled steps.
TensorBoard is an optional extra: ``pip install 'confide[tensorboard]'``.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from confide.experiments.config import ConfigError

MISSING = "--tensorboard needs TensorBoard, which is not installed: pip install 'confide[tensorboard]'"


def check_tensorboard_available() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(MISSING)


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row, lists flattened to ``name/i``; the update index left out."""
    out: dict[str, float] = {}
    for key, value in row.items():
        values = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for i, v in values:
            if (
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and key != "update"
            ):
                out[key if i is None else f"{key}/{i}"] = float(v)
    return out


class TensorBoardLog:
    """One run's event writer; ``start`` is the first update this process trains."""

    def __init__(self, run_dir: Path, start: int) -> None:
        check_tensorboard_available()
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides earlier events at steps >= start: those of updates redone after a resume, and
        # (start 0) every event of a fresh run or a resume from before the first checkpoint
        self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start)

    def log(self, update: int, row: dict[str, Any]) -> None:
        for tag, value in scalars(row).items():
            self._writer.add_scalar(tag, value, update)

    def close(self) -> None:
        self._writer.close()
