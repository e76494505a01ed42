"""Every algorithm runs end to end on a shrunk config, on each environment and topology kind."""

import numpy as np
import pytest

from confide.core.trainer import train
from confide.experiments.config import (
    ALGO_NAMES,
    AlgoConfig,
    EnvConfig,
    PpoConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
)


@pytest.mark.parametrize("algo", ALGO_NAMES)
@pytest.mark.parametrize("env", ["predation", "matrix"])
def test_every_algorithm_runs(algo, env):
    cfg = RunConfig(
        env=EnvConfig(name=env, agents=2 if env == "matrix" else 3),
        algo=AlgoConfig(name=algo),
        ppo=PpoConfig(iterations=2),
        train=TrainConfig(updates=2, batch=2),
    )
    s = train(cfg).summary
    assert s["updates"] == 2 and np.isfinite(s["normalized_return"])


@pytest.mark.parametrize("kind", ["complete", "ring", "line", "radius", "random_partners"])
def test_every_topology_kind_runs_with_gaps(kind):
    cfg = RunConfig(
        env=EnvConfig(agents=4),
        algo=AlgoConfig(name="ss"),
        topology=TopologyConfig(kind=kind, partners=1, period=2),
        train=TrainConfig(updates=3, batch=2),
    )
    result = train(cfg)
    assert result.metrics[1]["bytes_sent"] == 0  # update 1 is a gap
    assert result.summary["messages_rejected"] == {}
