"""Atomic result files: write to a temporary file in the same directory, fsync, then rename, so a
reader never sees half a file and a crash never leaves a truncated result.

A failed write (disk full, read-only directory) removes its temporary file and leaves the previous
version of the file untouched; the error is a ``ResultWriteError`` whose message is one line naming
the file and the reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class ResultWriteError(OSError):
    """A result or checkpoint file could not be written; its previous version is intact."""

    def __str__(self) -> str:
        return str(self.strerror)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` all at once (temp file + fsync + rename + fsync of the directory)."""
    p = Path(path)
    tmp: str | None = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data, p)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        tmp = None
        _fsync_directory(p.parent)
    except OSError as err:
        raise ResultWriteError(
            err.errno, f"cannot write {p}: {err.strerror or err} (the previous version is unchanged)"
        ) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _write_all(f: Any, data: bytes, target: Path) -> None:
    """The one place bytes hit the disk, for ``target`` (tests replace it to simulate a full disk)."""
    f.write(data)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; platforms that cannot open a directory skip it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSON-lines file in one write, without fsync.

    For a run's per-update rows: rewriting the whole file atomically after every update costs
    O(updates²) bytes and an fsync per update, which dominated runs of one episode per update. The
    trainer rewrites the file atomically at the end and on resume, and its checkpoints hold the rows,
    so a crash loses nothing; a crash mid-append can leave an unterminated last line, which
    ``read_jsonl`` skips.
    """
    p = Path(path)
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    try:
        with open(p, "ab") as f:
            _write_all(f, data, p)
    except OSError as err:
        raise ResultWriteError(
            err.errno, f"cannot write {p}: {err.strerror or err} (the rows before are unchanged)"
        ) from err


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; an unterminated last line (a crash mid-append) is skipped."""
    with open(path) as f:
        lines = f.read().split("\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]
