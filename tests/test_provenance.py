"""Every run records the code that made it; resuming or aggregating across code versions is visible."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import confide.core.trainer as trainer
from confide.experiments.checkpoint import load_checkpoint
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig
from confide.experiments.provenance import (
    PACKAGE_ROOT,
    code_note,
    code_spread,
    code_version,
    source_digest,
    source_files,
)


def _tree(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_digest_covers_the_packages_sources_and_nothing_else(tmp_path):
    _tree(
        tmp_path,
        {
            "cli.py": "x = 1\n",
            "core/ppo.py": "clip = 0.2\n",
            "core/__pycache__/ppo.py": "stale\n",
            "tests/test_x.py": "assert True\n",
            "benchmarks/b.py": "pass\n",
            "core/notes.md": "text\n",
        },
    )
    names = [p.relative_to(tmp_path).as_posix() for p in source_files(tmp_path)]
    assert names == ["cli.py", "core/ppo.py"]
    before = source_digest(tmp_path)
    _tree(tmp_path, {"tests/test_x.py": "assert 1\n", "benchmarks/b.py": "1\n", "core/notes.md": "more\n"})
    assert source_digest(tmp_path) == before  # tests, benchmarks and non-Python files change no number
    _tree(tmp_path, {"core/ppo.py": "clip = 0.1\n"})
    edited = source_digest(tmp_path)
    assert edited != before
    (tmp_path / "core/ppo.py").rename(tmp_path / "core/loss.py")
    assert source_digest(tmp_path) != edited  # a moved file is another code base


def test_this_checkouts_version_names_its_digest_and_libraries():
    assert any(p.name == "trainer.py" for p in source_files())
    version = code_version()
    assert version.startswith(f"src-{source_digest(PACKAGE_ROOT)}+torch-{torch.__version__}+numpy-")
    assert all(f"+{name}-" in version for name in ("numpy", "scipy", "networkx", "opacus"))


def _config() -> RunConfig:
    return RunConfig(
        env=EnvConfig(agents=3),
        algo=AlgoConfig(name="ippo"),
        train=TrainConfig(updates=6, batch=2, seed=3, checkpoint_every=2),
    )


class Killed(Exception):
    pass


def _killed_run(tmp_path, monkeypatch, version: str):
    """A run that other code (``version``) trained for 4 updates before it died."""
    real, calls = trainer.collect_rollout, {"n": 0}

    def rollout(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:
            raise Killed
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(trainer, "collect_rollout", rollout)
        m.setattr(trainer, "code_version", lambda: version)
        with pytest.raises(Killed):
            trainer.train(_config(), tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["code"] == version and on_disk["code_history"] == [version]


def test_a_run_resumed_by_other_code_says_so(tmp_path, monkeypatch):
    reference = trainer.train(_config())
    assert reference.summary["code"] == code_version() and reference.summary["code_history"] == [
        code_version()
    ]
    _killed_run(tmp_path, monkeypatch, "src-older")
    with pytest.warns(UserWarning, match="resuming a run trained so far by code src-older"):
        resumed = trainer.train(_config(), tmp_path, resume=True)
    assert resumed.metrics == reference.metrics  # the same code in fact: the numbers agree
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] and summary["code"] == code_version()
    assert summary["code_history"] == ["src-older", code_version()]
    assert code_note(*code_spread([summary, reference.summary])) == (
        "Mixed code: 1 run(s) were resumed by other code than started them."
    )


def test_a_checkpoint_from_before_versions_were_recorded_resumes_as_unknown(tmp_path, monkeypatch):
    _killed_run(tmp_path, monkeypatch, code_version())
    path = tmp_path / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    del data["code_history"]
    torch.save(data, path)
    assert load_checkpoint(path)["code_history"] == ["unknown"]
    with pytest.warns(UserWarning, match="by code unknown"):
        trainer.train(_config(), tmp_path, resume=True)
    assert json.loads((tmp_path / "summary.json").read_text())["code_history"] == ["unknown", code_version()]


def test_a_malformed_code_history_is_a_checkpoint_error(tmp_path, monkeypatch):
    _killed_run(tmp_path, monkeypatch, code_version())
    path = tmp_path / "checkpoint.pt"
    data = torch.load(path, weights_only=True)
    data["code_history"] = []
    torch.save(data, path)
    with pytest.raises(trainer.CheckpointError, match="malformed code_history"):
        trainer.train(_config(), tmp_path, resume=True)


def test_the_note_names_every_version_and_is_empty_for_one():
    one = {"code": "src-a", "code_history": ["src-a"]}
    assert code_spread([one, dict(one)]) == (["src-a"], 0)
    assert code_note(*code_spread([one, dict(one)])) == ""
    legacy = {"collective_return": 1.0}  # a summary from before versions were recorded
    other = {"code": "src-b", "code_history": ["src-a", "src-b"]}
    assert code_spread([one, legacy, other]) == (["src-a", "src-b", "unknown"], 1)
    assert code_note(*code_spread([one, legacy, other])) == (
        "Mixed code: its runs were made by 3 versions of the code (src-a, src-b, unknown); "
        "1 run(s) were resumed by other code than started them."
    )


def test_finishing_a_fully_trained_run_with_other_code_does_not_mark_it_mixed(tmp_path, monkeypatch):
    """A crash after the last checkpoint but before summary.json: the resume trains nothing, so the run
    is still the old code's alone."""
    with monkeypatch.context() as m:
        m.setattr(trainer, "code_version", lambda: "src-older")
        trainer.train(_config(), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "complete": False}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "resuming with other code" warning
        trainer.train(_config(), tmp_path, resume=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] and summary["code"] == "src-older" and summary["code_history"] == ["src-older"]
