"""Same seed and config: identical metrics and message transcripts. Different seeds: different."""

from confide.core.trainer import train
from confide.experiments.config import AlgoConfig, EnvConfig, RunConfig, TrainConfig


def _run(algo: str, seed: int):
    cfg = RunConfig(
        env=EnvConfig(agents=4), algo=AlgoConfig(name=algo), train=TrainConfig(updates=3, batch=4, seed=seed)
    )
    return train(cfg)


def _strip_wall(rows):
    return rows  # per-update rows hold no timings


def test_same_seed_gives_identical_metrics_and_transcripts():
    for algo in ("as", "ss", "dpo_shared"):
        a, b = _run(algo, 7), _run(algo, 7)
        assert _strip_wall(a.metrics) == _strip_wall(b.metrics)
        assert a.transcript_digest == b.transcript_digest


def test_different_seeds_differ():
    a, b = _run("as", 1), _run("as", 2)
    assert a.metrics != b.metrics
    assert a.transcript_digest != b.transcript_digest
