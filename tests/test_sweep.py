"""Sweeps (issue 10): the grid expands to its cartesian product with stable, unique, file-safe run ids;
a bad grid point stops everything before any run with one line; a sweep runs end to end into a table
and a plot; a rerun trains nothing; an interrupted sweep resumes its runs where their checkpoints are;
Ray (slow) gives the same runs as the local pool."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import confide.core.trainer as trainer
import confide.experiments.sweep as sweep_mod
from confide.cli import main
from confide.experiments.checkpoint import checkpoint_path, run_is_complete
from confide.experiments.config import ConfigError, config_from_dict
from confide.experiments.io import read_jsonl
from confide.experiments.sweep import Sweep, expand, load_sweep, run_sweep, sweep_from_dict
from confide.experiments.sweep_report import PointResult, aggregate_table, score_matrices

SWEEPS = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"
TINY = {
    "title": "tiny",
    "base": {
        "env": {"name": "predation", "agents": 3},
        "train": {"updates": 2, "batch": 2},
        "channel": {"loss": "bernoulli"},
    },
    "grid": {"algo.name": ["as", "ss"], "channel.loss_probability": [0, 0.5]},
    "seeds": 1,
}


def _write(path: Path, sweep: dict) -> Path:
    path.write_text(json.dumps(sweep))
    return path


def test_expand_is_the_cartesian_product_with_stable_unique_ids():
    sweep = {
        **TINY,
        "grid": {"algo.name": ["as", "ss"], "channel.loss_probability": [0, 0.1, 0.5]},
        "seeds": 2,
    }
    runs = expand(sweep)
    ids = [run_id for run_id, _ in runs]
    assert len(runs) == 2 * 3 * 2 and len(set(ids)) == len(ids)
    assert "algo.name=as,channel.loss_probability=0.1/s1" in ids
    assert all(re.fullmatch(r"[A-Za-z0-9._+=,-]+/s\d+", i) for i in ids)
    combos = {(c["algo"]["name"], c["channel"]["loss_probability"], c["train"]["seed"]) for _, c in runs}
    assert combos == {(a, p, s) for a in ("as", "ss") for p in (0, 0.1, 0.5) for s in (0, 1)}
    for run_id, config in runs:  # the base is kept, the point and seed set, every config valid
        assert config["env"]["agents"] == 3 and config["channel"]["loss"] == "bernoulli"
        assert run_id.endswith(f"/s{config['train']['seed']}")
        config_from_dict(config)
    reordered = {**sweep, "grid": dict(reversed(list(sweep["grid"].items())))}
    assert sorted(ids) == sorted(i for i, _ in expand(reordered)) and ids == [i for i, _ in expand(sweep)]
    assert [i for i, _ in expand({**TINY, "grid": {}, "seeds": [4, 7]})] == ["base/s4", "base/s7"]


def test_ids_are_file_safe_and_equal_values_are_refused():
    sweep = {"grid": {"channel.dp_arrays": [["a/b", "c d"]], "channel.dp_delta": [1e-05]}}
    ((run_id, _),) = expand(sweep)
    assert run_id == "channel.dp_arrays=a_b+c_d,channel.dp_delta=1e-05/s0"
    with pytest.raises(ConfigError, match="repeat the run id"):
        expand({"grid": {"channel.loss_probability": [0, 0.0]}})


def test_shipped_sweeps_are_the_issues_grids_and_their_quick_variants_match():
    for name, key, values, count in [
        ("channel_drops", "channel.loss_probability", [0, 0.1, 0.3, 0.5], 60),
        ("channel_delay", "channel.delay_rounds", [0, 1, 3], 45),
    ]:
        full, quick = load_sweep(SWEEPS / f"{name}.toml"), load_sweep(SWEEPS / f"{name}_quick.toml")
        assert full.grid == quick.grid == {"algo.name": ["as", "ss", "vs", "vps", "ps"], key: values}
        assert full.seeds == (0, 1, 2) and len(expand(full)) == count
        configs = [config_from_dict(c) for _, c in expand(full)]
        assert {(c.env.name, c.env.agents, c.train.updates) for c in configs} == {("predation", 8, 150)}
        assert all(c.channel.loss == ("bernoulli" if "drops" in name else "none") for c in configs)
        quick_configs = [config_from_dict(c) for _, c in expand(quick)]
        assert {(c.env.agents, c.train.updates, c.train.seed) for c in quick_configs} == {
            (3, 5, s) for s in (0, 1)
        }


@pytest.mark.parametrize(
    "grid,needle",
    [
        ({"algo.name": ["as", "magic"]}, "grid point algo.name=magic: algo.name: unknown algorithm 'magic'"),
        ({"channel.loss_probability": [0.1, 1.5]}, "grid point channel.loss_probability=1.5: channel:"),
        ({"env.agents": [3, 1]}, "grid point env.agents=1: env.agents must be in"),
        ({"algo.name": "as"}, "grid.algo.name must be a non-empty list"),
        ({"train.seed": [1, 2]}, "not grid.train.seed"),
        ({"channel.loss probability": [0]}, "not a dotted config key"),
    ],
)
def test_invalid_grid_point_is_one_line_and_status_2(tmp_path, capsys, grid, needle):
    path = _write(tmp_path / "s.json", {**TINY, "grid": grid})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_bad_sweep_file_and_missing_ray_are_one_line(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path / "s.json", {**TINY, "seed": 3})
    assert main(["sweep", str(path)]) == 2
    assert "unknown key(s) seed" in capsys.readouterr().err
    real = sweep_mod.importlib.util.find_spec
    monkeypatch.setattr(sweep_mod.importlib.util, "find_spec", lambda n: None if n == "ray" else real(n))
    path = _write(tmp_path / "t.json", TINY)
    assert main(["sweep", str(path), "--ray", "auto", "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'confide[ray]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """The tiny sweep run once through the CLI with two worker processes."""
    root = tmp_path_factory.mktemp("sweep")
    path = _write(root / "tiny.json", TINY)
    status = main(["sweep", str(path), "--out", str(root / "out"), "--workers", "2", "--no-progress"])
    return path, root / "out", status


def test_tiny_sweep_runs_end_to_end_into_a_table_and_a_plot(tiny_sweep):
    _, out, status = tiny_sweep
    assert status == 0
    manifest = json.loads((out / "sweep.json").read_text())
    ids = [r["id"] for r in manifest["runs"]]
    assert ids == [i for i, _ in expand(TINY)]
    assert {r["status"] for r in manifest["runs"]} == {"complete"}
    for run_id, config in expand(TINY):
        saved = json.loads((out / run_id / "config.json").read_text())
        assert saved["algo"]["name"] == config["algo"]["name"]
        assert saved["channel"]["loss_probability"] == config["channel"]["loss_probability"]
    report = (out / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| as |") or line.startswith("| ss |")]
    assert len(rows) == 4 and all("1/1" in r for r in rows)
    plot = out / "score_vs_channel.loss_probability.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.name in report
    assert "data:image/png;base64," in (out / "report.html").read_text()  # the plot inside the page


def test_rerun_skips_complete_runs_and_trains_nothing(tiny_sweep, monkeypatch, capsys):
    path, out, _ = tiny_sweep

    def no_training(*args, **kwargs):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(trainer, "train", no_training)
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "4 already complete, 0 run now, 0 failed" in capsys.readouterr().out


def test_a_changed_config_under_the_same_run_id_is_refused(tiny_sweep, capsys):
    _, out, _ = tiny_sweep
    changed = {**TINY, "base": {**TINY["base"], "train": {"updates": 2, "batch": 4}}}
    path = _write(out.parent / "changed.json", changed)
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds a run of another config (differs in train.batch)" in err


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing after it runs, only the disk survives."""


def test_an_interrupted_sweep_resumes_from_the_checkpoints(tmp_path, monkeypatch):
    sweep = sweep_from_dict(
        {
            "base": {"env": {"agents": 3}, "train": {"updates": 3, "batch": 2, "checkpoint_every": 1}},
            "grid": {"algo.name": ["as", "ss"]},
        }
    )
    real, calls = trainer.collect_rollout, {"n": 0}

    def rollout(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "collect_rollout", rollout)
    kill_at = 5  # the first run's 3 updates, then the second run dies in its second update
    with pytest.raises(Killed):
        run_sweep(sweep, tmp_path, workers=1, progress=False)
    manifest = {r["id"]: r["status"] for r in json.loads((tmp_path / "sweep.json").read_text())["runs"]}
    assert manifest == {"algo.name=as/s0": "complete", "algo.name=ss/s0": "pending"}
    assert len(read_jsonl(tmp_path / "algo.name=ss/s0" / "metrics.jsonl")) == 1

    calls["n"], kill_at = 0, -1
    result = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert calls["n"] == 2  # only the second run's last two updates
    assert result.skipped == ["algo.name=as/s0"] and result.ran == ["algo.name=ss/s0"] and not result.failed
    (_, config) = expand(sweep)[1]
    reference = trainer.train(config_from_dict(config))
    assert read_jsonl(tmp_path / "algo.name=ss/s0" / "metrics.jsonl") == json.loads(
        json.dumps(reference.metrics)
    )


KILL = {
    "title": "kill -9",
    "base": {
        "env": {"name": "predation", "agents": 3},
        "train": {"updates": 4, "batch": 2, "checkpoint_every": 1},
    },
    "grid": {"algo.name": ["as", "ss"]},
    "seeds": 2,
}


def _without_wall_time(report: str) -> list[str]:
    """The report's lines, the table's last column (wall seconds) cut off."""
    return [line.rsplit(" | ", 1)[0] if line.startswith("| ") else line for line in report.splitlines()]


def test_kill_9_mid_sweep_then_rerun_completes_only_the_missing_runs_and_the_aggregate_is_unchanged(tmp_path):
    """A real SIGKILL of the ``confide sweep`` process group while a run is between two checkpoints."""
    path, out = _write(tmp_path / "kill.json", KILL), tmp_path / "killed"
    runs = [run_id for run_id, _ in expand(KILL)]
    command = [sys.executable, "-m", "confide", "sweep", str(path), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(
        [*command, "--no-progress"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline, complete = time.monotonic() + 300, []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            complete = [r for r in runs if run_is_complete(out / r)]
            mid_run = [r for r in runs if r not in complete and checkpoint_path(out / r).exists()]
            if complete and mid_run:
                break
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
    before = {r for r in runs if run_is_complete(out / r)}
    assert before and before != set(runs)  # killed mid-way: some runs complete, some not
    interrupted = [r for r in runs if r not in before and checkpoint_path(out / r).exists()]
    assert interrupted  # one run holds a checkpoint from before its end
    assert len(read_jsonl(out / interrupted[0] / "metrics.jsonl")) < KILL["base"]["train"]["updates"]

    resumed = run_sweep(load_sweep(path), out, workers=1, progress=False)
    assert set(resumed.skipped) == before and set(resumed.ran) == set(runs) - before and not resumed.failed
    whole = run_sweep(load_sweep(path), tmp_path / "whole", workers=1, progress=False)
    assert set(whole.ran) == set(runs)
    for run_id in runs:  # every run bit for bit, then the aggregate
        a, b = (d / run_id for d in (out, tmp_path / "whole"))
        assert read_jsonl(a / "metrics.jsonl") == read_jsonl(b / "metrics.jsonl"), run_id
        sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
        assert {**sa, "wall_seconds": 0} == {**sb, "wall_seconds": 0}, run_id
    reports = [_without_wall_time((d / "report.md").read_text()) for d in (out, tmp_path / "whole")]
    assert reports[0] == reports[1] and any("2/2" in line for line in reports[0])


def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    real = sweep_mod._run_one

    def diverge_for_ss(job):
        if "algo.name=ss" in job[1]:
            raise trainer.DivergenceError("update 0, agent 1: actor.weight holds 3 NaN/inf value(s)")
        return real(job)

    monkeypatch.setattr(sweep_mod, "_run_one", diverge_for_ss)
    path = _write(tmp_path / "s.json", {**TINY, "grid": {"algo.name": ["as", "ss"]}})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    progress = [line for line in lines if line.startswith("[")]  # --no-progress: plain lines for logs
    assert [line.split("]")[0] for line in progress] == ["[1/2", "[2/2"]
    assert sum("FAILED" in line for line in progress) == 1
    (err,) = [line for line in lines if not line.startswith("[")]
    assert "1 run(s) failed" in err and "DivergenceError" in err
    runs = {r["id"]: r for r in json.loads((tmp_path / "out" / "sweep.json").read_text())["runs"]}
    assert runs["algo.name=as/s0"]["status"] == "complete" and runs["algo.name=ss/s0"]["status"] == "failed"
    assert "NaN/inf" in runs["algo.name=ss/s0"]["note"]
    assert "algo.name=ss/s0" in (tmp_path / "out" / "report.md").read_text()  # listed as missing


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # Ray's notice about GPU environment variables
def test_ray_runs_the_same_sweep_on_a_local_instance(tmp_path):
    """A local Ray instance stands in for a cluster; the CLI in another process connects to it by address
    (as to a real cluster) and its runs equal the local pool's, digest for digest."""
    ray = pytest.importorskip("ray")
    sweep = {**TINY, "grid": {"algo.name": ["as", "ss"]}}
    path = _write(tmp_path / "s.json", sweep)
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        address = context.address_info["gcs_address"]
        command = [sys.executable, "-m", "confide", "sweep", str(path), "--out", str(tmp_path / "ray")]
        done = subprocess.run(
            [*command, "--ray", address, "--no-progress"], capture_output=True, text=True, timeout=600
        )
    finally:
        ray.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 already complete, 2 run now, 0 failed" in done.stdout
    local = run_sweep(load_sweep(path), tmp_path / "local", workers=1, progress=False)
    assert len(local.ran) == 2
    for run_id, _ in expand(sweep):
        a, b = (json.loads((tmp_path / d / run_id / "summary.json").read_text()) for d in ("ray", "local"))
        assert a["complete"] and a["transcript_digest"] == b["transcript_digest"]
        assert a["collective_return"] == b["collective_return"]


@pytest.mark.parametrize(
    "ticks,crowded",
    [
        ([0.0, 0.001, 0.01], True),
        ([0.0, 0.001, 0.01, 0.1], True),
        ([1.0, 10.0, 100.0], True),
        ([float(k) for k in range(1, 11)], False),
        ([0.0, 0.1, 0.3, 0.5], False),
        ([100.0, 500.0, 1000.0], False),
        ([0.0, 1.0, 3.0], False),
        ([-1.0, 0.0, 0.001], False),
        ([0.5, 10.0], False),  # two values: evenly spaced by definition
    ],
)
def test_only_grids_spanning_decades_unevenly_get_a_symlog_axis(ticks, crowded):
    from confide.experiments.sweep_report import crowded_on_a_linear_axis

    assert crowded_on_a_linear_axis(ticks) is crowded


def test_tensorboard_flag_logs_every_run_and_changes_no_run(tmp_path, capsys):
    path = _write(tmp_path / "s.json", {**TINY, "grid": {"algo.name": ["as", "ss"]}})
    out = tmp_path / "out"
    assert (
        main(["sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress", "--tensorboard"]) == 0
    )
    for run_id, _ in expand({**TINY, "grid": {"algo.name": ["as", "ss"]}}):
        assert next((out / run_id / "tensorboard").glob("events.out.tfevents.*")).stat().st_size > 0
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert (
        "2 already complete, 0 run now" in capsys.readouterr().out
    )  # the flag is no part of a run's identity


def test_a_sweep_over_environments_aggregates_runs_by_tasks():
    sweep = Sweep(grid={"algo.name": ["a", "b"], "env.game": [1, 2]}, seeds=(0, 1, 2))

    def point(algo, game, scores):
        summaries = [{"seed": s, "normalized_return": v} for s, v in scores.items()]
        return PointResult(f"{algo}{game}", {"algo.name": algo, "env.game": game}, algo, summaries, [])

    results = [
        point("a", 1, {0: 0.9, 1: 0.8, 2: 0.7}),
        point("a", 2, {0: 0.6, 1: 0.5}),  # seed 2 missing on game 2: a has 2 runs × 2 tasks
        point("b", 1, {0: 0.1, 1: 0.1, 2: 0.1}),
        point("b", 2, {0: 0.1, 1: 0.1, 2: 0.1}),
    ]
    matrices = score_matrices(results, sweep)
    assert matrices["algo.name=a"].tolist() == [[0.9, 0.6], [0.8, 0.5]] and matrices["algo.name=b"].shape == (
        3,
        2,
    )
    table = aggregate_table(matrices)
    row = next(line for line in table if line.startswith("| algo.name=a |"))
    assert "| 2 × 2 | 0.700 [" in row and "1.00 [1.00, 1.00]" in row  # IQM cuts 0.5 and 0.9
    assert score_matrices(results, Sweep(grid={"algo.name": ["a", "b"]}, seeds=(0,))) == {}  # no task swept
