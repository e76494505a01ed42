"""The privacy-utility view of a DP sweep: ε per agent read from real runs, the relay left out, the
table and the plot written."""

from __future__ import annotations

import numpy as np

from confide.core.trainer import train
from confide.experiments.config import config_from_dict
from confide.experiments.privacy_utility import agent_epsilons, epsilon_table, plot_score_against_epsilon
from confide.experiments.sweep_report import PointResult


def _run(tmp_path, algo, sigma, seed=0):
    config = config_from_dict(
        {
            "env": {"name": "predation", "agents": 3},
            "algo": {"name": algo},
            "train": {"updates": 2, "batch": 2, "seed": seed, "progress": False},
            "channel": {"dp_mechanism": "gaussian", "dp_clip_norm": 1.0, "dp_noise_multiplier": sigma},
        }
    )
    return train(config, tmp_path / f"{algo}_{sigma}_{seed}", progress=False).summary


def test_epsilons_are_the_agents_and_fall_with_sigma(tmp_path):
    loud, quiet = _run(tmp_path, "vs", 0.5), _run(tmp_path, "vs", 4.0)
    eps_loud, eps_quiet = agent_epsilons(loud), agent_epsilons(quiet)
    assert eps_loud is not None and eps_quiet is not None
    assert eps_loud.shape == (3,)  # agents 0..2; the relay node 3 is left out
    assert np.all(eps_quiet < eps_loud) and np.all(eps_quiet > 0)
    plain = dict(loud, channel={**loud["channel"], "privacy": {}})
    assert agent_epsilons(plain) is None


def test_table_and_plot_from_point_results(tmp_path):
    results = [
        PointResult(
            f"p{s}",
            {"algo.name": "vs", "channel.dp_noise_multiplier": s},
            "vs",
            [_run(tmp_path, "vs", s)],
            [],
        )
        for s in (1.0, 2.0)
    ]
    table = epsilon_table(results)
    assert len(table) == 4 and table[2].startswith("| vs | channel.dp_noise_multiplier=1.0 | 1e-05 |")
    worst = [float(row.split("|")[4]) for row in table[2:]]
    assert worst[0] > worst[1]
    path = tmp_path / "eps.png"
    plot_score_against_epsilon(results, "t", path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
