"""Runs that survive: a run killed after a checkpoint and resumed gives exactly the metrics rows and
transcript digest of an uninterrupted run with the same seed; signals stop at an update boundary;
divergence stops with the agent, update and tensor named; bad checkpoints are refused in one line."""

import json
import os
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import torch

import confide.core.trainer as trainer
from confide.channels import ChannelSettings, IdealChannel, Message, Meter, Tap
from confide.cli import main
from confide.core.comms import Comms
from confide.core.registry import build_learner
from confide.experiments.checkpoint import CheckpointError, load_checkpoint
from confide.experiments.config import (
    ALGO_NAMES,
    AlgoConfig,
    EnvConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
)
from confide.experiments.io import read_jsonl
from confide.experiments.report import load_runs

UPDATES, EVERY = 6, 2
LOSSY_ENCRYPTED_NOISY = ChannelSettings(
    loss="gilbert_elliott",
    burst_p=0.2,
    burst_r=0.5,
    delay_rounds=1,
    delay_jitter_rounds=2,
    encrypt=True,
    quantisation="int8",
    dp_mechanism="gaussian",
    dp_noise_multiplier=2.0,
)


class Killed(Exception):
    """Stands in for SIGKILL in-process: nothing after it runs, only the disk survives."""


def _config(algo: str, **kw) -> RunConfig:
    return RunConfig(
        env=kw.pop("env", EnvConfig(agents=3)),
        algo=AlgoConfig(name=algo),
        topology=kw.pop("topology", TopologyConfig()),
        train=TrainConfig(updates=UPDATES, batch=2, seed=11, checkpoint_every=EVERY),
        channel=kw.pop("channel", ChannelSettings()),
    )


def _skip_unbuildable(config: RunConfig) -> None:
    env = trainer.make_run_env(config)
    try:
        build_learner(config, env.state_dim, env.n_actions, torch.Generator().manual_seed(0))
    except Exception as err:  # names someone is still implementing
        pytest.skip(f"{config.algo.name} cannot be built yet: {type(err).__name__}: {err}")


def _kill_at(monkeypatch, update: int) -> None:
    """Die at the start of ``update`` (its rollout), as a SIGKILL would."""
    real, calls = trainer.collect_rollout, {"n": 0}

    def rollout(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > update:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "collect_rollout", rollout)


def _without_wall(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "wall_seconds"}


def _json_rows(rows):
    return [json.loads(json.dumps(r, sort_keys=True)) for r in rows]


CASES = [(a, {}) for a in ALGO_NAMES] + [
    ("ss", {"topology": TopologyConfig(kind="random_partners", partners=1, period=2)}),
    ("dpo_shared", {"env": EnvConfig(name="matrix", agents=2, game=2)}),
    # messages in flight across the checkpoint, link keys and sequence numbers, drop and noise generators
    ("as", {"channel": LOSSY_ENCRYPTED_NOISY}),
    ("cl", {"channel": LOSSY_ENCRYPTED_NOISY}),
]


@pytest.mark.parametrize(
    "algo,extra", CASES, ids=[f"{a}{'+' if e else ''}{i}" for i, (a, e) in enumerate(CASES)]
)
def test_killed_then_resumed_run_equals_uninterrupted_run(algo, extra, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = _config(algo, **extra)
    _skip_unbuildable(config)
    reference = trainer.train(config)
    kill = EVERY + zlib.crc32(f"{algo}{extra}".encode()) % (UPDATES - EVERY)  # after the first checkpoint
    with monkeypatch.context() as m:
        _kill_at(m, kill)
        with pytest.raises(Killed):
            trainer.train(config, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is False and summary["updates"] == kill // EVERY * EVERY
    assert load_runs(tmp_path) == {}  # the crashed run is never aggregated
    assert len(read_jsonl(run / "metrics.jsonl")) == kill  # rows past the checkpoint are redone

    resumed = trainer.train(config, run, resume=True)
    assert resumed.metrics == reference.metrics
    assert resumed.transcript_digest == reference.transcript_digest
    assert _without_wall(resumed.summary) == _without_wall(reference.summary)
    assert read_jsonl(run / "metrics.jsonl") == _json_rows(reference.metrics)
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["complete"] is True and on_disk["transcript_digest"] == reference.transcript_digest


def test_sigkill_of_a_cli_run_then_resume_equals_uninterrupted(tmp_path):
    """A real process, a real SIGKILL at a random update after a checkpoint, a real ``--resume``."""
    args = ["--agents", "3", "--updates", "12", "--batch", "4", "--algo", "ss", "--seed", "5"]
    args += ["--checkpoint-every", "3", "--no-progress"]
    out = tmp_path / "run"
    target = int(np.random.default_rng().integers(4, 11))  # rows written before the kill
    proc = subprocess.Popen(
        [sys.executable, "-m", "confide", "train", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        rows = (out / "metrics.jsonl").read_text().count("\n") if (out / "metrics.jsonl").exists() else 0
        if rows >= target and (out / "checkpoint.pt").exists():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait(timeout=60) == -signal.SIGKILL, (target, proc.stderr.read().decode())
    proc.stderr.close()
    assert json.loads((out / "summary.json").read_text())["complete"] is False
    assert load_checkpoint(out / "checkpoint.pt")["updates_done"] % 3 == 0

    done = subprocess.run(
        [sys.executable, "-m", "confide", "train", "--resume", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    config = RunConfig(
        env=EnvConfig(agents=3), algo=AlgoConfig(name="ss"), train=TrainConfig(updates=12, batch=4, seed=5)
    )
    reference = trainer.train(config)
    assert read_jsonl(out / "metrics.jsonl") == _json_rows(reference.metrics)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["transcript_digest"] == reference.transcript_digest


def test_sigterm_stops_at_the_update_boundary_with_a_checkpoint(tmp_path, monkeypatch):
    config = _config("ss")
    reference = trainer.train(config)
    real, calls = trainer.collect_rollout, {"n": 0}

    def rollout(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # during update 3, between checkpoints
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "collect_rollout", rollout)
    with pytest.raises(trainer.TrainingInterrupted, match="SIGTERM after update 4") as exc:
        trainer.train(config, tmp_path, stop_on_signals=True)
    assert exc.value.signal_number == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers put back
    assert load_checkpoint(tmp_path / "checkpoint.pt")["updates_done"] == 4
    monkeypatch.setattr(trainer, "collect_rollout", real)
    resumed = trainer.train(config, tmp_path, resume=True)
    assert resumed.metrics == reference.metrics and resumed.transcript_digest == reference.transcript_digest


def test_resume_refuses_another_config_a_corrupt_checkpoint_and_a_complete_run(tmp_path, monkeypatch):
    config = _config("ippo")
    with monkeypatch.context() as m:
        _kill_at(m, 3)
        with pytest.raises(Killed):
            trainer.train(config, tmp_path)
    other = RunConfig(env=config.env, algo=config.algo, train=TrainConfig(updates=UPDATES, batch=2, seed=12))
    with pytest.raises(CheckpointError, match="differs in train.seed"):
        trainer.train(other, tmp_path, resume=True)
    trainer.train(config, tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="complete run"):
        trainer.train(config, tmp_path, resume=True)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "summary.json").write_text('{"complete": false}')
    with pytest.raises(CheckpointError, match="unreadable"):
        trainer.train(config, tmp_path, resume=True)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_resume_errors_are_one_line_with_status_2(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--resume", str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert "not a run directory" in _one_error_line(capsys)
    assert main(["train", "--resume", str(run), "--agents", "4"]) == 2
    assert "drop --agents" in _one_error_line(capsys)
    with monkeypatch.context() as m:
        _kill_at(m, 3)
        with pytest.raises(Killed):
            main(
                ["train", "--agents", "2", "--updates", "4", "--batch", "1", "--checkpoint-every", "2"]
                + ["--algo", "ippo", "--out", str(run), "--no-progress"]
            )
    capsys.readouterr()
    assert main(["train", "--agents", "2", "--updates", "4", "--out", str(run), "--no-progress"]) == 2
    assert "unfinished run" in _one_error_line(capsys)
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a zip")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "unreadable" in _one_error_line(capsys)


def test_parameter_divergence_names_agent_update_and_tensor(tmp_path, monkeypatch):
    config = _config("ippo")
    real_build = trainer.build_learner

    def build(*args, **kwargs):
        learner = real_build(*args, **kwargs)
        real_update, calls = learner.update, {"n": 0}

        def update(*a, **k):
            stats = real_update(*a, **k)
            calls["n"] += 1
            if calls["n"] == 3:  # update 2
                with torch.no_grad():
                    learner.population.critic.weights[1][2, 0] = float("nan")
            return stats

        learner.update = update
        return learner

    monkeypatch.setattr(trainer, "build_learner", build)
    with pytest.raises(trainer.DivergenceError) as exc:
        trainer.train(config, tmp_path)
    message = str(exc.value)
    assert "update 2" in message and "agent 2" in message and "population.critic.weights.1" in message
    assert load_checkpoint(tmp_path / "checkpoint.pt")["updates_done"] == 2  # the finite state
    assert json.loads((tmp_path / "summary.json").read_text())["complete"] is False


def test_statistic_divergence_names_the_statistic_and_agent():
    with pytest.raises(trainer.DivergenceError, match="update 4: statistic loss/critic is nan"):
        trainer._check_finite({"loss/critic": float("nan")}, 4)
    with pytest.raises(trainer.DivergenceError, match="update 1, agent 1: statistic agent_returns is inf"):
        trainer._check_finite({"agent_returns": [0.0, float("inf")]}, 1)


def test_channel_layers_round_trip_their_state():
    meter = Meter(IdealChannel())
    tap = Tap(meter, keep_payloads=True)
    comms = Comms(tap, 3)
    payload = {"probs": np.array([[0.25, 0.75]], dtype=np.float32)}
    comms.exchange([Message(0, 1, "policy", 0, payload), Message(2, 1, "value", 0, payload)])
    comms.reject("policy:bad_shape")
    meter2 = Meter(IdealChannel())
    tap2 = Tap(meter2, keep_payloads=True)
    comms2 = Comms(tap2, 3)
    for a, b in ((meter, meter2), (tap, tap2), (comms, comms2)):
        b.load_state_dict(a.state_dict())
    assert tap2.transcript_digest() == tap.transcript_digest() and tap2.entries == tap.entries
    assert [m.encoded_payload() for m in tap2.payloads] == [m.encoded_payload() for m in tap.payloads]
    assert meter2.bytes_by_link == meter.bytes_by_link and meter2.messages_by_kind == meter.messages_by_kind
    assert (comms2.round, comms2.rejected, comms2.delivered) == (1, comms.rejected, 2)


def test_a_checkpoint_from_before_a_new_config_field_resumes(tmp_path, monkeypatch):
    """A field added to the config after a checkpoint was written takes its default: the run resumes and
    equals an uninterrupted one; a field the schema no longer knows still blocks the resume."""
    config = _config("ippo")
    reference = trainer.train(config)
    with monkeypatch.context() as m:
        _kill_at(m, 3)
        with pytest.raises(Killed):
            trainer.train(config, tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    older = json.loads(json.dumps(checkpoint["config"]))
    del older["algo"]["network"]  # as written before `algo.network` existed
    trainer.save_checkpoint(
        tmp_path / "checkpoint.pt",
        older,
        checkpoint["updates_done"],
        0.0,
        checkpoint["state"],
        checkpoint["code_history"],
    )
    resumed = trainer.train(config, tmp_path, resume=True)
    assert resumed.metrics == reference.metrics and resumed.transcript_digest == reference.transcript_digest
    with monkeypatch.context() as m:
        _kill_at(m, 3)
        with pytest.raises(Killed):
            trainer.train(config, tmp_path / "b")
    checkpoint = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    renamed = json.loads(json.dumps(checkpoint["config"]))
    renamed["algo"]["old_name"] = 1
    trainer.save_checkpoint(
        tmp_path / "b" / "checkpoint.pt",
        renamed,
        checkpoint["updates_done"],
        0.0,
        checkpoint["state"],
        checkpoint["code_history"],
    )
    with pytest.raises(CheckpointError, match="differs in algo.old_name"):
        trainer.train(config, tmp_path / "b", resume=True)
