"""The shadow runs of the leakage study (``confide leak``): train run k of an algorithm with its secret,
record what every observer sees, turn each view into features and cache them, in one or many processes.

A run records its public behaviour (every update's states and joint actions, ``train(observe=…)``) and
every message as the wire carried it (``train(keep_payloads=True)``): ciphertext when encrypted, which
the insiders (T1, T3, T4) open with the run's own keys, rebuilt from its seed (``decrypt_wire``). The
ideal channel delivers everything, so an encrypted run trains exactly as the unencrypted one: T2 is the
eavesdropper of that run (plaintext on the link), T2enc the eavesdropper of this one (ciphertext, sizes,
kinds, rounds). Features go to ``<out>/shadow/<algo>/run<k>.npz``, so a rerun skips finished runs.
"""

from __future__ import annotations

import io
import multiprocessing as mp
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from confide.channels import Message
from confide.experiments.config import RunConfig
from confide.experiments.io import atomic_write_bytes

if TYPE_CHECKING:
    from confide.experiments.leakage_study import LeakStudy

Job = tuple["LeakStudy", str, int, str]
"""(study, algorithm, run index k, cache path)."""


def decrypt_wire(config: RunConfig, wire: Sequence[Message]) -> tuple[Message, ...]:
    """The plaintext of an encrypted run's wire messages, opened with the run's own link keys (rebuilt
    from its seed by ``build_run_channel``): what each receiver reads after decryption."""
    from confide.core.trainer import build_run_channel

    layer = build_run_channel(config)[0].layers["encryption"]
    opened = [layer.decrypt(m) for m in wire]
    if any(m is None for m in opened):
        raise RuntimeError(f"could not open the wire transcript: {dict(layer.rejected)}")
    return tuple(opened)  # type: ignore[arg-type]


def shadow_run(study: LeakStudy, algo: str, k: int) -> dict[str, np.ndarray]:
    """Train run k of ``algo`` and return its features per view plus the secret and run statistics."""
    from confide.core.trainer import make_run_env, train
    from confide.experiments.hyperparameters import ppo_settings
    from confide.privacy.attacks import FeatureSpec, extract
    from confide.privacy.observers import RunRecord, observe

    config = study.run_config(algo, k)
    weights = study.weights(k)
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []

    def record_rollout(update: int, rollout: Any) -> None:
        states.append(rollout.states.numpy().copy())
        actions.append(rollout.actions.numpy().copy())

    result = train(
        config, env_kwargs={"approach_weights": weights}, observe=record_rollout, keep_payloads=True
    )
    wire = result.wire_payloads
    plain = decrypt_wire(config, wire) if study.encrypt else wire
    n_actions = make_run_env(config).n_actions
    behaviour = (np.concatenate(states, axis=1), np.concatenate(actions, axis=1), n_actions)
    plain_record = RunRecord(tuple(plain), *behaviour)
    wire_record = RunRecord(tuple(plain), *behaviour, wire=tuple(wire)) if study.encrypt else plain_record
    spec = FeatureSpec(gamma=ppo_settings(config).gamma)
    out = {
        "secret": np.int64(study.secret(k)),
        "weights": weights,
        "normalized_return": np.float64(result.summary["normalized_return"]),
        "bytes_per_agent_per_update": np.float64(result.summary["bytes_per_agent_per_update"]),
        "messages": np.int64(len(wire)),
        "wall_seconds": np.float64(result.summary["wall_seconds"]),
    }
    for view in study.views:
        record = wire_record if view == "T2enc" else plain_record
        threat = "T2" if view == "T2enc" else view
        out[f"features_{view}"] = extract(observe(record, threat, study.observers(view)), study.target, spec)
    return out


def cache_path(out: Path, algo: str, k: int) -> Path:
    """Where run k of ``algo`` keeps its features under the study directory ``out``."""
    return out / "shadow" / algo / f"run{k:05d}.npz"


def run_job(job: Job) -> tuple[str, int]:
    """Train one shadow run and write its features atomically (a killed study leaves no half file)."""
    study, algo, k, path = job
    buf = io.BytesIO()
    np.savez(buf, **shadow_run(study, algo, k))
    atomic_write_bytes(path, buf.getvalue())
    return algo, k


def execute(jobs: list[Job], workers: int, progress: bool) -> Iterator[tuple[str, int]]:
    """Run the jobs here (one worker) or in a spawned pool, yielding (algorithm, k) as each finishes."""
    bar = None
    if progress and jobs:
        from rich.progress import Progress

        bar = Progress(transient=False)
        task = bar.add_task(f"{len(jobs)} shadow runs", total=len(jobs))
        bar.start()
    try:
        if workers <= 1 or len(jobs) <= 1:
            done: Iterator[tuple[str, int]] = map(run_job, jobs)
            for item in done:
                if bar is not None:
                    bar.update(task, advance=1)
                yield item
        else:
            with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
                for item in pool.imap_unordered(run_job, jobs):
                    if bar is not None:
                        bar.update(task, advance=1)
                    yield item
    finally:
        if bar is not None:
            bar.stop()


def load_runs(out: Path, study: LeakStudy, algo: str) -> dict[str, np.ndarray]:
    """``{statistic or features_<view>: [runs, ...]}`` of ``algo``'s cached runs 0..runs-1."""
    rows = []
    for k in range(study.runs):
        with np.load(cache_path(out, algo, k)) as f:
            rows.append({name: f[name] for name in f.files})
    return {name: np.stack([r[name] for r in rows]) for name in rows[0]}
