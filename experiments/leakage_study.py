"""The end-to-end leakage study behind ``confide leak`` (issue 7): what each observer learns about one
agent's private reward parameter, per algorithm × threat model, with intervals and controls.

Design (read ``docs/leakage.md``, "The study", for the reasons):

1. **Secret.** C. Predation's approach weights ``w_i ∈ {0.5, 1.5}`` (``envs.predation``), drawn for every
   agent of every shadow run; the secret is the target's, ``s = 1`` iff ``w_target = 1.5``. Runs come in
   pairs (2m, 2m + 1) whose secrets are a seeded random permutation of (0, 1): each run's secret is ½/½
   a priori, and both halves of the study hold as many 0s as 1s. The other agents' weights are i.i.d.
   draws from the prior (nuisance the attacker does not know).
2. **Shadow runs.** Per algorithm, ``runs`` short training runs; run k has seed ``seed·10⁶ + k`` and the
   same weights under every algorithm (a paired design). A run records its public behaviour (every
   update's states and joint actions, ``train(observe=…)``) and every message as the wire carried it
   (``train(keep_payloads=True)``): ciphertext when encrypted, which the insiders (T1, T3, T4) open with
   the run's own keys, rebuilt from its seed (``decrypt_wire``). The ideal channel delivers everything,
   so an encrypted run trains exactly as the unencrypted one: T2 is the eavesdropper of that run
   (plaintext on the link), T2enc the eavesdropper of this one (ciphertext, sizes, kinds, rounds).
3. **Views and features.** T0 behaviour only; T1 agent ``target + 1`` reads its inbox; T2 / T2enc the
   link (target, target + 1); T3 every message; T4 every agent but the target pools its inbox. Each view
   becomes ``extract(view, target)`` (``privacy.attacks``), cached per run in
   ``<out>/shadow/<algo>/run<k>.npz`` so a rerun skips finished runs.
4. **Attack.** The first half of the pairs trains, the second half tests (disjoint seeds). Per (algorithm,
   view): the learned attack on the ``⌊n_train / 4⌋`` features that best separate the secrets on the
   training runs (``screen``: with ~800 features and tens of runs, L2 logistic regression on all of them
   interpolates noise and missed even plaintext rewards), its shuffled-secret control (screening
   included), the T0 baseline and the paired excess: ``privacy.estimators.leakage_with_controls``
   composed with *common random numbers*: a view's attack and its T0 baseline use the same generator
   seed (same CV folds, same bootstrap resamples), so a view that adds nothing to behaviour (identical
   features, e.g. every view of a message-free algorithm) reproduces the baseline exactly and its excess
   is exactly 0 rather than a second noisy fit.
5. **Output.** ``leakage.md`` (the table), ``leakage.png`` (bits and AUC with intervals), ``leakage.json``,
   all written atomically; ``study.json`` pins the settings the cached runs belong to.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from confide.channels import Message
from confide.experiments.config import ALGO_NAMES, ConfigError, RunConfig, config_from_dict
from confide.experiments.io import atomic_write_bytes, atomic_write_json
from confide.privacy.estimators import AttackResult, LeakageReport, compare, learned_attack

ViewName = Literal["T0", "T1", "T2", "T2enc", "T3", "T4"]
VIEW_NAMES: tuple[str, ...] = get_args(ViewName)
VIEW_LABELS = {
    "T0": "behaviour only",
    "T1": "curious neighbour",
    "T2": "link eavesdropper, plaintext",
    "T2enc": "link eavesdropper, encrypted",
    "T3": "curious relay/server",
    "T4": "colluding neighbours",
}
SECRET_ENVS = ("predation",)  # environments whose private parameter is wired into the study
DEFAULT_ALGOS = ("dpo", "as", "ss", "vs", "vps", "ps")
RUNS_PER_FEATURE = 4  # the attack keeps ⌊n_train / 4⌋ screened features (see ``screened_attack``)
FEATURES_VERSION = 1  # bump when extraction changes: cached features of older runs are then refused


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


# ---------------------------------------------------------------------------------------------------
# one shadow run


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


def _cache_path(out: Path, algo: str, k: int) -> Path:
    return out / "shadow" / algo / f"run{k:05d}.npz"


def _job(job: tuple[LeakStudy, str, int, str]) -> tuple[str, int]:
    study, algo, k, path = job
    buf = io.BytesIO()
    np.savez(buf, **shadow_run(study, algo, k))
    atomic_write_bytes(path, buf.getvalue())
    return algo, k


# ---------------------------------------------------------------------------------------------------
# the attack


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


def screen(features: np.ndarray, secrets: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns of ``features [n, F]`` that best separate the 0/1 ``secrets`` on these
    runs: largest |mean₁ − mean₀| / pooled std (a column constant within each class but not between
    them scores ~inf, a constant column 0); ties in column order."""
    x, y = np.asarray(features, dtype=np.float64), np.asarray(secrets).astype(bool)
    a, b = x[y], x[~y]
    sd = np.sqrt((a.var(axis=0) + b.var(axis=0)) / 2)
    score = np.abs(a.mean(axis=0) - b.mean(axis=0)) / (sd + 1e-12 * (1 + np.abs(x).max(axis=0)))
    return np.argsort(-score, kind="stable")[:k]


def screened_attack(
    x_train: np.ndarray,
    s_train: np.ndarray,
    x_test: np.ndarray,
    s_test: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
) -> AttackResult:
    """``learned_attack`` on the ``⌊n_train / RUNS_PER_FEATURE⌋`` columns ``screen`` picks on the training
    runs (never on the test runs, so the held-out numbers stay honest)."""
    cols = screen(x_train, s_train, max(1, len(s_train) // RUNS_PER_FEATURE))
    return learned_attack(x_train[:, cols], s_train, x_test[:, cols], s_test, rng, n_bootstrap=n_bootstrap)


def analyse(
    study: LeakStudy, features: dict[str, dict[str, np.ndarray]], secrets: np.ndarray, n_bootstrap: int = 1000
) -> dict[tuple[str, str], LeakageReport]:
    """Reports per (algorithm, view) from ``features[algo][view] [runs, F]`` and ``secrets [runs]``."""
    train_idx, test_idx = study.split()
    s_tr, s_te = secrets[train_idx], secrets[test_idx]
    reports: dict[tuple[str, str], LeakageReport] = {}
    for algo in study.algos:
        crn = [study.seed, zlib.crc32(algo.encode())]  # shared by every view of this algorithm and T0
        memo: dict[tuple[int, bytes], Any] = {}

        def attack(x: np.ndarray, shuffle: bool, crn: list[int] = crn, memo: dict = memo) -> Any:
            """The attack (or its shuffled control) on ``x``; views with identical features share it."""
            key = (int(shuffle), hashlib.sha256(np.ascontiguousarray(x)).digest())
            if key not in memo:
                rng = np.random.default_rng([*crn, int(shuffle)])
                y_tr, y_te = s_tr, s_te
                if shuffle:  # as estimators.shuffled_control, with the screening inside
                    perm_rng, rng = rng.spawn(2)
                    y_tr, y_te = perm_rng.permutation(s_tr), perm_rng.permutation(s_te)
                memo[key] = screened_attack(x[train_idx], y_tr, x[test_idx], y_te, rng, n_bootstrap)
            return memo[key]

        baseline = attack(features[algo]["T0"], False)
        for v, view in enumerate(study.views):
            x = features[algo][view]
            result = attack(x, False)
            excess = compare(result, baseline, np.random.default_rng([*crn, 2, v]), n_bootstrap)
            reports[(algo, view)] = LeakageReport(result, attack(x, True), baseline, excess)
    return reports


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
        (study, algo, k, str(_cache_path(out, algo, k)))
        for algo in study.algos
        for k in range(study.runs)
        if not _cache_path(out, algo, k).exists()
    ]
    for _ in _execute(jobs, study.workers, progress):
        pass
    runs = {algo: _load(out, study, algo) for algo in study.algos}
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
    atomic_write_json(out / "leakage.json", _as_json(study, reports, stats))
    plot_leakage(study, reports, plot)
    return StudyResult(study, reports, stats, wall, table, plot)


def _execute(jobs: list, workers: int, progress: bool) -> Iterator[tuple[str, int]]:
    bar = None
    if progress and jobs:
        from rich.progress import Progress

        bar = Progress(transient=False)
        task = bar.add_task(f"{len(jobs)} shadow runs", total=len(jobs))
        bar.start()
    try:
        if workers <= 1 or len(jobs) <= 1:
            done: Iterator[tuple[str, int]] = map(_job, jobs)
            for item in done:
                if bar is not None:
                    bar.update(task, advance=1)
                yield item
        else:
            with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
                for item in pool.imap_unordered(_job, jobs):
                    if bar is not None:
                        bar.update(task, advance=1)
                    yield item
    finally:
        if bar is not None:
            bar.stop()


def _load(out: Path, study: LeakStudy, algo: str) -> dict[str, np.ndarray]:
    rows = []
    for k in range(study.runs):
        with np.load(_cache_path(out, algo, k)) as f:
            rows.append({name: f[name] for name in f.files})
    return {name: np.stack([r[name] for r in rows]) for name in rows[0]}


# ---------------------------------------------------------------------------------------------------
# output


def _ci(i: Any, digits: int = 2) -> str:
    return f"{i.estimate:.{digits}f} [{i.low:.{digits}f}, {i.high:.{digits}f}]"


def render_table(
    study: LeakStudy,
    reports: dict[tuple[str, str], LeakageReport],
    stats: dict[str, dict[str, np.ndarray]],
    wall: float,
) -> str:
    train_idx, test_idx = study.split()
    run_wall = sum(float(s["wall_seconds"].sum()) for s in stats.values())
    lines = [
        f"# Leakage of agent {study.target}'s private approach weight: {study.env}, N = {study.agents}",
        "",
        f"`{study.command()}`",
        "",
        f"Secret: w_{study.target} ∈ {{0.5, 1.5}} (prior ½ each; H = 1 bit); other agents' weights drawn "
        f"from the same prior. {study.runs} shadow runs per algorithm ({study.updates} updates × "
        f"{study.batch} episodes each), attacker trained on {len(train_idx)} runs and tested on "
        f"{len(test_idx)} held-out runs with other seeds. Intervals: 95 % bootstrap over held-out runs. "
        f"Observers: T1 agent {study.observers('T1')[0]}, T2 link {study.observers('T2')}, T4 agents "
        f"{study.observers('T4')}. Wall time: {wall:.0f} s this invocation, {run_wall:.0f} s of training "
        "in the cached shadow runs. How to read it: `docs/leakage.md`.",
        "",
        "Every number is one attack's lower bound on what the view reveals; 0 bits means this attack found "
        "nothing. Attacker: the L2 penalty cross-validation chose, or *prior* when the prior-only attacker won "
        "(it abstains: AUC 0.50 [0.50, 0.50] then says nothing was learned, not that the leak is known to be "
        "0). Δ: paired excess over T0 (raw bits). The shuffled control (secrets permuted) shows the noise "
        "level of this design; about 1 row in 20 lands outside chance by chance alone.",
        "",
        "| algorithm | view | AUC [95% CI] | TPR@1%FPR [95% CI] | bits [95% CI] | Δbits vs T0 [95% CI] "
        "| ΔAUC vs T0 [95% CI] | attacker | shuffled: AUC [95% CI], bits |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for algo in study.algos:
        for view in study.views:
            r = reports[(algo, view)]
            a = r.attack
            lines.append(
                f"| {algo} | {view} {VIEW_LABELS[view]} | {_ci(a.auc)} | {_ci(a.tpr_at_fpr)} | {_ci(a.bits, 3)} "
                f"| {_ci(r.excess.bits, 3)} | {_ci(r.excess.auc)} "
                f"| {'prior' if np.isinf(a.l2) else f'λ={a.l2:g}'} "
                f"| {_ci(r.shuffled.auc)}, {r.shuffled.bits.estimate:.3f} |"
            )
    lines += [
        "",
        "Shadow runs (mean over runs): normalised return, bytes per agent per update, messages per run.",
        "",
        "| algorithm | normalised return | bytes/agent/update | messages |",
        "| --- | --- | --- | --- |",
    ]
    for algo in study.algos:
        s = stats[algo]
        lines.append(
            f"| {algo} | {np.mean(s['normalized_return']):.3f} | {np.mean(s['bytes_per_agent_per_update']):,.0f} "
            f"| {np.mean(s['messages']):,.0f} |"
        )
    return "\n".join(lines) + "\n"


def _as_json(
    study: LeakStudy, reports: dict[tuple[str, str], LeakageReport], stats: dict[str, dict[str, np.ndarray]]
) -> dict[str, Any]:
    def iv(i: Any) -> list[float]:
        return [i.estimate, i.low, i.high]

    rows = []
    for (algo, view), r in reports.items():
        a = r.attack
        rows.append(
            {
                "algo": algo,
                "view": view,
                "auc": iv(a.auc),
                "tpr_at_1pct_fpr": iv(a.tpr_at_fpr),
                "bits": iv(a.bits),
                "bits_raw": iv(a.bits_raw),
                "excess_bits": iv(r.excess.bits),
                "excess_auc": iv(r.excess.auc),
                "shuffled_auc": iv(r.shuffled.auc),
                "shuffled_bits": iv(r.shuffled.bits),
                "l2": None if np.isinf(a.l2) else a.l2,
                "n_train": a.n_train,
                "n_test": a.n_test,
            }
        )
    runs = {a: {k: np.asarray(v).tolist() for k, v in s.items()} for a, s in stats.items()}
    return {"study": {**asdict(study), "algos": list(study.algos)}, "results": rows, "runs": runs}


def plot_leakage(study: LeakStudy, reports: dict[tuple[str, str], LeakageReport], path: Path) -> None:
    """Bits and AUC per algorithm (groups) × view (bars) with 95 % intervals; chance as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.4 * len(study.algos) * len(study.views) / 3), 7))
    width = 0.8 / len(study.views)
    x = np.arange(len(study.algos))
    for ax, metric, chance in ((axes[0], "bits", 0.0), (axes[1], "auc", 0.5)):
        for v, view in enumerate(study.views):
            ivs = [getattr(reports[(a, view)].attack, metric) for a in study.algos]
            est = np.array([i.estimate for i in ivs])
            err = np.array([[i.estimate - i.low for i in ivs], [i.high - i.estimate for i in ivs]])
            ax.bar(x + (v - (len(study.views) - 1) / 2) * width, est, width, yerr=err, capsize=2, label=view)
        ax.axhline(chance, color="black", linewidth=0.8)
        ax.set_xticks(x, study.algos)
        ax.set_ylabel("bits (lower bound)" if metric == "bits" else "AUC")
    axes[0].set_title(f"What each view reveals about w_{study.target} ({study.env}, N = {study.agents})")
    axes[0].legend(ncol=len(study.views), fontsize=8)
    axes[1].set_ylim(0, 1.05)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
