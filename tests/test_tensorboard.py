"""--tensorboard: every numeric metric of every update as a TensorBoard scalar, exactly once per step even
across an interruption and resume; a changed flag does not block resuming; a missing install is one line."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from confide.cli import main
from confide.core.trainer import train
from confide.experiments.checkpoint import config_differences
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig
from confide.experiments.io import read_jsonl
from confide.experiments.tensorboard_log import scalars

CONFIG = RunConfig(
    env=EnvConfig(agents=2),
    algo=AlgoConfig(name="ippo"),
    train=TrainConfig(updates=4, batch=2, checkpoint_every=2, tensorboard=True, progress=False),
)


def _events(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(run_dir) -> dict[str, list[tuple[int, float]]]:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    tags = scalars(rows[0])
    return {tag: [(r["update"], pytest.approx(scalars(r)[tag], rel=1e-6)) for r in rows] for tag in tags}


def test_every_numeric_metric_is_a_scalar_per_update(tmp_path):
    train(CONFIG, tmp_path / "run")
    events = _events(tmp_path / "run")
    assert {"collective_return", "agent_returns/0", "agent_returns/1", "bytes_sent"} <= set(events)
    assert "update" not in events
    assert events == _expected(tmp_path / "run")


def test_a_resumed_run_has_each_step_once(tmp_path):
    def crash_at_update_3(update, rollout):
        if update == 3:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):  # updates 0-2 logged, the checkpoint holds 0-1
        train(CONFIG, tmp_path / "run", observe=crash_at_update_3)
    train(CONFIG, tmp_path / "run", resume=True)  # update 2's first events are purged
    assert _events(tmp_path / "run") == _expected(tmp_path / "run")
    before_first_checkpoint = dataclasses.replace(CONFIG.train, checkpoint_every=10)
    config = dataclasses.replace(CONFIG, train=before_first_checkpoint)
    with pytest.raises(RuntimeError, match="killed"):  # updates 0-2 logged, no checkpoint
        train(config, tmp_path / "early", observe=crash_at_update_3)
    train(config, tmp_path / "early", resume=True)  # starts over at update 0
    assert _events(tmp_path / "early") == _expected(tmp_path / "early")
    train(config, tmp_path / "early")  # a fresh run over a complete one: its old events are hidden
    assert _events(tmp_path / "early") == _expected(tmp_path / "early")
    assert (
        config_differences(
            CONFIG.to_dict(),
            {**CONFIG.to_dict(), "train": {**CONFIG.to_dict()["train"], "tensorboard": False}},
        )
        == []
    )


def test_without_tensorboard_installed_the_flag_is_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a)
    )
    for argv in (["train", "--updates", "1"], ["compare", "--updates", "1"]):
        assert main([*argv, "--tensorboard", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "pip install 'confide[tensorboard]'" in err
    assert not (tmp_path / "x").exists()
    config = tmp_path / "c.toml"
    config.write_text("[train]\ntensorboard = true\n")  # asked for by a config file, not the flag
    assert main(["train", "--config", str(config), "--updates", "1", "--out", str(tmp_path / "y")]) == 2
    assert "confide[tensorboard]" in capsys.readouterr().err


def test_federate_refuses_the_flag(capsys):
    assert main(["federate", "--agents", "2", "--updates", "1", "--tensorboard"]) == 2
    assert "federate: --tensorboard is not supported" in capsys.readouterr().err
