"""Atomic result files: a failed write (disk full, read-only directory) leaves the previous file intact
and no temporary file behind; a run that cannot write stops with one line and exit status 2, and its
last checkpoint still resumes to the uninterrupted result."""

import errno
import json
import os
import tempfile

import pytest

import confide.core.trainer as trainer
import confide.experiments.io as io
from confide.cli import main
from confide.experiments.checkpoint import load_checkpoint
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig
from confide.experiments.io import ResultWriteError, append_jsonl, atomic_write_json, read_jsonl

ARGS = ["--agents", "2", "--updates", "5", "--batch", "1", "--algo", "ss", "--seed", "3"]
ARGS += ["--checkpoint-every", "2", "--no-progress"]
CONFIG = RunConfig(
    env=EnvConfig(agents=2),
    algo=AlgoConfig(name="ss"),
    train=TrainConfig(updates=5, batch=1, seed=3, checkpoint_every=2),
)


def _disk_full(monkeypatch, when) -> None:
    """Make the byte write raise ENOSPC for target files whose name satisfies ``when``."""
    real = io._write_all

    def write(f, data, target):
        if when(target.name):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(f, data, target)

    monkeypatch.setattr(io, "_write_all", write)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"complete": True})
    _disk_full(monkeypatch, lambda name: True)
    with pytest.raises(ResultWriteError) as exc:
        atomic_write_json(path, {"complete": False})
    assert exc.value.errno == errno.ENOSPC
    assert (
        str(exc.value) == f"cannot write {path}: No space left on device (the previous version is unchanged)"
    )
    assert json.loads(path.read_text()) == {"complete": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_disk_full_during_a_checkpoint_stops_with_status_2_and_the_old_checkpoint_resumes(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    checkpoint = out / "checkpoint.pt"
    with monkeypatch.context() as m:  # the second checkpoint (after update 4) hits a full disk
        _disk_full(m, lambda name: name == "checkpoint.pt" and checkpoint.exists())
        assert main(["train", *ARGS, "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert "No space left on device" in err and "checkpoint.pt" in err
    assert load_checkpoint(checkpoint)["updates_done"] == 2
    assert json.loads((out / "summary.json").read_text())["complete"] is False
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    reference = trainer.train(CONFIG)
    assert read_jsonl(out / "metrics.jsonl") == json.loads(json.dumps(reference.metrics))


def test_disk_full_on_metrics_stops_with_status_2(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _disk_full(m, lambda name: name == "metrics.jsonl" and (out / "checkpoint.pt").exists())
        assert main(["train", *ARGS, "--out", str(out)]) == 2
    assert "cannot write" in _one_error_line(capsys)
    assert load_checkpoint(out / "checkpoint.pt")["updates_done"] == 2
    assert len(read_jsonl(out / "metrics.jsonl")) == 2


def _interrupted_run(out, monkeypatch) -> bytes:
    """A run stopped after update 3 (its checkpoint is at 2); returns the checkpoint's bytes."""
    real, calls = trainer.collect_rollout, {"n": 0}

    def rollout(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(trainer, "collect_rollout", rollout)
        assert main(["train", *ARGS, "--out", str(out)]) == 130
    return (out / "checkpoint.pt").read_bytes()


def _chmod_blocks_writes(directory) -> bool:
    """False where chmod does not stop this process writing (root with CAP_DAC_OVERRIDE)."""
    probe = directory / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_bytes(b"")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
    return False


def test_read_only_run_directory_gives_status_2_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    if not _chmod_blocks_writes(tmp_path):
        pytest.skip("chmod does not block writes here (root); the EROFS test below covers it")
    out = tmp_path / "run"
    before = _interrupted_run(out, monkeypatch)
    capsys.readouterr()
    out.chmod(0o555)
    try:
        assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    finally:
        out.chmod(0o755)
    assert "Permission denied" in _one_error_line(capsys)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_read_only_file_system_gives_status_2_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    """The same as above by another technique (works as root): creating any file fails with EROFS."""
    out = tmp_path / "run"
    before = _interrupted_run(out, monkeypatch)
    capsys.readouterr()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", read_only)
        assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "Read-only file system" in _one_error_line(capsys)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0


def test_an_unterminated_last_row_left_by_a_crash_mid_append_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"update": 0}, {"update": 1}])
    append_jsonl(path, [{"update": 2}])
    assert read_jsonl(path) == [{"update": 0}, {"update": 1}, {"update": 2}]
    with open(path, "a") as f:
        f.write('{"update": 3, "collective_re')  # the process died inside the write
    assert read_jsonl(path) == [{"update": 0}, {"update": 1}, {"update": 2}]
