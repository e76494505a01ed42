"""The leakage study behind ``confide leak`` (issue 7): what each observer learns about one agent's
private reward parameter, per algorithm × threat model, with intervals and controls.

This module defines a study (``LeakStudy``: its settings, validation, secrets, views and run configs)
and runs it (``run_study``). The shadow runs live in ``leakage_shadow_runs``, the attack in
``leakage_attack``, the table, JSON and plot in ``leakage_report``. Design (reasons in
``docs/leakage.md``, "The study"):

1. **Secret.** C. Predation's approach weights ``w_i ∈ {0.5, 1.5}`` (``envs.predation``), drawn for every
   agent of every shadow run; the secret is the target's, ``s = 1`` iff ``w_target = 1.5``. Runs come in
   pairs (2m, 2m + 1) whose secrets are a seeded random permutation of (0, 1): each run's secret is ½/½
   a priori, and both halves of the study hold as many 0s as 1s. The other agents' weights are i.i.d.
   draws from the prior (nuisance the attacker does not know).
2. **Shadow runs.** Per algorithm, ``runs`` short training runs; run k has seed ``seed·10⁶ + k`` and the
   same weights under every algorithm (a paired design), recording behaviour and the wire.
3. **Views.** T0 behaviour only; T1 agent ``target + 1`` reads its inbox; T2 / T2enc the link (target,
   target + 1); T3 every message; T4 every agent but the target pools its inbox.
4. **Attack.** First half of the pairs trains, second half tests; screened features, shuffled control,
   T0 baseline and paired excess with common random numbers.
5. **Output.** ``leakage.md``, ``leakage.png``, ``leakage.json``, all written atomically; ``study.json``
   pins the settings the cached runs belong to.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from confide.experiments.config import ALGO_NAMES, ConfigError, RunConfig, config_from_dict
from confide.experiments.io import atomic_write_bytes, atomic_write_json
from confide.experiments.leakage_attack import analyse
from confide.experiments.leakage_report import VIEW_LABELS, as_json, plot_leakage, render_table
from confide.experiments.leakage_shadow_runs import cache_path, execute, load_runs
from confide.privacy.estimators import LeakageReport

ViewName = Literal["T0", "T1", "T2", "T2enc", "T3", "T4"]
VIEW_NAMES: tuple[str, ...] = get_args(ViewName)
SECRET_ENVS = ("predation",)  # environments whose private parameter is wired into the study
DEFAULT_ALGOS = ("dpo", "as", "ss", "vs", "vps", "ps")
FEATURES_VERSION = 1  # bump when extraction changes: cached features of older runs are then refused
__all__ = ["VIEW_LABELS", "VIEW_NAMES", "LeakStudy", "StudyResult", "run_study"]


@dataclass(frozen=True)
class LeakStudy:
    """Every setting of a study; ``runs``, ``algos``, ``workers`` and ``n_bootstrap`` aside, they pin the
    cached runs (``fingerprint``)."""

    env: str = "predation"
    agents: int = 4
    algos: tuple[str, ...] = DEFAULT_ALGOS
    runs: int = 40
    """Shadow runs per algorithm (even, ≥ 8): half train the attacker, half test it."""
    updates: int = 10
    batch: int = 8
    target: int = 0
    """The agent whose private weight is the secret."""
    encrypt: bool = True
    """Encrypt the links (adds the T2enc view; the other views are the same either way)."""
    scheme: Literal["as", "ss"] = "ss"
    topology: str | None = None
    """None: the environment's default (radius for C. Predation)."""
    seed: int = 0
    workers: int = field(default=1, compare=False)
    n_bootstrap: int = field(default=1000, compare=False)
    """Bootstrap resamples per interval (the analysis only: not part of the cached runs' fingerprint)."""

    def __post_init__(self) -> None:
        if self.env not in SECRET_ENVS:
            raise ConfigError(
                f"--env: the study needs a private reward parameter; supported: {', '.join(SECRET_ENVS)}"
            )
        bad = [a for a in self.algos if a not in ALGO_NAMES]
        if not self.algos or bad or len(set(self.algos)) != len(self.algos):
            raise ConfigError(f"--algos: need distinct known algorithms, got {','.join(self.algos) or '-'}")
        if self.runs < 8 or self.runs % 2 or self.runs > 100_000:
            raise ConfigError(f"--runs must be even and in 8..100000, got {self.runs}")
        if not 0 <= self.target < self.agents:
            raise ConfigError(f"--target must be an agent in 0..{self.agents - 1}, got {self.target}")
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"--workers must be in 1..256, got {self.workers}")
        self.run_config(self.algos[0], 0)  # validates env, agents, updates, batch, topology

    @property
    def views(self) -> tuple[ViewName, ...]:
        return tuple(v for v in VIEW_NAMES if v != "T2enc" or self.encrypt)  # type: ignore[misc]

    def observers(self, view: ViewName) -> tuple[int, ...]:
        """Who observes: T1 the target's next agent, T2 its link to it, T4 every other agent."""
        nxt = (self.target + 1) % self.agents
        if view == "T1":
            return (nxt,)
        if view in ("T2", "T2enc"):
            return (self.target, nxt)
        if view == "T4":
            return tuple(a for a in range(self.agents) if a != self.target)
        return ()

    def run_config(self, algo: str, k: int) -> RunConfig:
        data: dict[str, Any] = {
            "env": {"name": self.env, "agents": self.agents, "scheme": self.scheme},
            "algo": {"name": algo},
            "train": {
                "updates": self.updates,
                "batch": self.batch,
                "seed": self.seed * 1_000_000 + k,
                "progress": False,
                "checkpoint_every": 0,
            },
            "channel": {"encrypt": self.encrypt},
        }
        if self.topology is not None:
            data["topology"] = {"kind": self.topology}
        return config_from_dict(data)

    def secret(self, k: int) -> int:
        """Run k's secret (0: w_target = 0.5, 1: 1.5); the pair (2m, 2m + 1) holds one of each."""
        pair = np.random.default_rng([self.seed, 0, k // 2]).permutation(2)
        return int(pair[k % 2])

    def weights(self, k: int) -> np.ndarray:
        """``[N]`` run k's approach weights: the others drawn from the prior, the target's from its secret."""
        from confide.envs.predation import APPROACH_WEIGHTS, draw_private_params

        w = draw_private_params(np.random.default_rng([self.seed, 1, k]), self.agents)
        w[self.target] = APPROACH_WEIGHTS[self.secret(k)]
        return w

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train runs, test runs): the first ⌈pairs/2⌉ pairs train."""
        n_train = 2 * ((self.runs // 2 + 1) // 2)
        return np.arange(n_train), np.arange(n_train, self.runs)

    def fingerprint(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("runs", "algos", "workers", "n_bootstrap"):
            d.pop(key)
        return {**d, "features_version": FEATURES_VERSION}

    def command(self) -> str:
        enc = "--encrypt" if self.encrypt else "--no-encrypt"
        return (
            f"confide leak --env {self.env} --agents {self.agents} --algos {','.join(self.algos)} "
            f"--runs {self.runs} --updates {self.updates} --batch {self.batch} --target {self.target} {enc}"
        )


@dataclass(frozen=True)
class StudyResult:
    study: LeakStudy
    reports: dict[tuple[str, str], LeakageReport]
    """``(algorithm, view) -> LeakageReport``."""
    runs: dict[str, dict[str, np.ndarray]]
    """``algorithm -> {statistic: [runs]}`` from the shadow runs (normalised return, bytes, ...)."""
    wall_seconds: float
    table: Path
    plot: Path


def run_study(study: LeakStudy, out: str | Path, progress: bool = True) -> StudyResult:
    """Run (or finish) the shadow runs under ``out``, attack them, write the table, plot and JSON."""
    started = time.perf_counter()
    out = Path(out)
    manifest = out / "study.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != study.fingerprint():
            differs = sorted(
                k for k in {**old, **study.fingerprint()} if old.get(k) != study.fingerprint().get(k)
            )
            raise ConfigError(
                f"{out} holds a study with other settings ({', '.join(differs)}); pick another --out"
            )
    atomic_write_json(manifest, study.fingerprint())
    jobs = [
        (study, algo, k, str(cache_path(out, algo, k)))
        for algo in study.algos
        for k in range(study.runs)
        if not cache_path(out, algo, k).exists()
    ]
    for _ in execute(jobs, study.workers, progress):
        pass
    runs = {algo: load_runs(out, study, algo) for algo in study.algos}
    secrets = np.array([study.secret(k) for k in range(study.runs)])
    for algo, r in runs.items():
        if not np.array_equal(r["secret"], secrets):
            raise ConfigError(f"cached runs of {algo} under {out} disagree with the study's secrets")
    features = {a: {v: runs[a][f"features_{v}"] for v in study.views} for a in study.algos}
    reports = analyse(study, features, secrets, study.n_bootstrap)
    stats = {a: {k: v for k, v in r.items() if not k.startswith("features_")} for a, r in runs.items()}
    wall = time.perf_counter() - started
    table, plot = out / "leakage.md", out / "leakage.png"
    atomic_write_bytes(table, render_table(study, reports, stats, wall).encode())
    atomic_write_json(out / "leakage.json", as_json(study, reports, stats))
    plot_leakage(study, reports, plot)
    return StudyResult(study, reports, stats, wall, table, plot)
