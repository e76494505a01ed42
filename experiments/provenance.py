"""Which code made a run: a fingerprint of confide's source and the numeric libraries' versions.

A config pins what a run computes only as long as the code does not change. Resuming a checkpoint, or
reusing a complete run, after an edit to (say) the PPO loss would mix two versions of confide in one
result without a trace, so every ``summary.json`` says which code made it (``"code"``) and, when a run
was resumed by other code than started it, every version that trained part of it
(``"code_history"``). Aggregates (the results page, the sweep report) show when their runs disagree.

The fingerprint is the SHA-256 of the Python sources of the packages that run an experiment (tests,
benchmarks and docs are left out: they change no number), plus the versions of the numeric libraries
(torch, numpy, scipy, networkx, opacus), which decide bit-for-bit results as much as confide's own code.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

UNKNOWN_CODE = "unknown"  # a run or checkpoint written before code versions were recorded
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGES: tuple[str, ...] = (
    "channels",
    "core",
    "envs",
    "experiments",
    "federation",
    "privacy",
    "topologies",
)


def source_files(root: Path = PACKAGE_ROOT) -> list[Path]:
    """The ``.py`` files the fingerprint covers, in a fixed order: the top level's and the packages'."""
    files = sorted(root.glob("*.py"))
    for package in SOURCE_PACKAGES:
        files += sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def source_digest(root: Path = PACKAGE_ROOT) -> str:
    """SHA-256 (first 12 hex digits) over each source file's path relative to ``root`` and its bytes."""
    h = hashlib.sha256()
    for path in source_files(root):
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:12]


NUMERIC_LIBRARIES: tuple[str, ...] = ("torch", "numpy", "scipy", "networkx", "opacus")
"""The installed libraries whose code computes numbers of a run (scipy: assignments and the exact DPO
iteration; networkx: topologies; opacus: DP accounting and DP-SGD)."""


def library_versions() -> str:
    """``torch-2.13.0+numpy-…``: the installed versions, read from the package metadata (no import)."""
    parts = []
    for name in NUMERIC_LIBRARIES:
        try:
            parts.append(f"{name}-{metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}-none")
    return "+".join(parts)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``src-<digest>+torch-<v>+numpy-<v>+…``: equal strings mean the same code computed the run.

    Computed once per process; ``core.trainer`` calls it when it is imported, so the digest is of the
    sources as Python loaded them, not of a checkout edited later while a sweep's workers run."""
    return f"src-{source_digest()}+{library_versions()}"


def code_spread(summaries: list[dict[str, Any]]) -> tuple[list[str], int]:
    """The distinct code versions that finished ``summaries`` (``"unknown"`` for runs from before
    versions were recorded) and how many runs were resumed by other code than started them."""
    versions = sorted({str(s.get("code", UNKNOWN_CODE)) for s in summaries})
    mixed = sum(len(s.get("code_history", ())) > 1 for s in summaries)
    return versions, mixed


def code_note(versions: list[str], mixed: int) -> str:
    """One sentence for an aggregate whose runs do not all come from one code version; else ``""``."""
    parts = []
    if len(versions) > 1:
        parts.append(f"its runs were made by {len(versions)} versions of the code ({', '.join(versions)})")
    if mixed:
        parts.append(f"{mixed} run(s) were resumed by other code than started them")
    return ("Mixed code: " + "; ".join(parts) + ".") if parts else ""
