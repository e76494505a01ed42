"""A rich progress bar for training runs (stderr, so stdout stays clean for paths and tables)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBar:
    def __init__(self, total: int, label: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("R={task.fields[collective_return]:.1f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(label, total=total, collective_return=float("nan"))
        self._progress.start()

    def update(self, advance: int, collective_return: float) -> None:
        self._progress.update(self._task, advance=advance, collective_return=collective_return)

    def close(self) -> None:
        self._progress.stop()
