"""``algo.network``: the shared-trunk actors train through ``confide train``, are labelled as a different
model, are refused where they do not apply, and leave the default (exact) model's runs unchanged."""

import json

import pytest
import torch

from confide.cli import check_command, main
from confide.core.networks import SharedTrunkHeads, StackedMLP
from confide.core.population import NetworkSizes, Population
from confide.core.registry import build_learner
from confide.core.trainer import train
from confide.experiments import hyperparameters as hp
from confide.experiments.config import ConfigError, config_from_dict
from confide.experiments.report import load_runs

TINY = {"env": {"name": "predation", "agents": 3}, "train": {"updates": 2, "batch": 2, "progress": False}}


def _config(algo: str = "as", **algo_fields):
    return config_from_dict({**TINY, "algo": {"name": algo, **algo_fields}})


def test_confide_train_runs_the_shared_trunk_and_labels_it(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--algo", "ss", "--agents", "3", "--updates", "2", "--batch", "2"]
    assert main([*args, "--network", "shared_trunk", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["network"] == "shared_trunk" and summary["complete"]
    assert json.loads((out / "config.json").read_text())["algo"]["network"] == "shared_trunk"
    assert list(load_runs(tmp_path)) == ["ss [shared trunk]"]  # the report's row names the model


@pytest.mark.parametrize("algo", ["as", "as_peer", "ss"])
def test_the_option_builds_shared_trunk_heads(algo):
    gen = torch.Generator().manual_seed(0)
    learner = build_learner(_config(algo, network="shared_trunk"), 3, 2, gen)
    assert isinstance(learner.population.policy, SharedTrunkHeads)
    assert isinstance(build_learner(_config(algo), 3, 2, gen).population.policy, StackedMLP)


def test_the_default_is_the_exact_model_bit_for_bit():
    default, exact = _config(), _config(network="exact")
    assert default.algo.network == "exact" and default == exact
    # The learner's networks are those built without the option at all, from the same generator.
    built = build_learner(default, 3, 2, torch.Generator().manual_seed(5)).population
    hidden = hp.sharing_table(default).hidden
    plain = Population(3, 3, 2, 3, NetworkSizes(hidden, hidden), torch.Generator().manual_seed(5))
    for a, b in zip(built.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    a, b = train(default), train(exact)
    assert a.metrics == b.metrics and a.transcript_digest == b.transcript_digest
    trunk = train(_config(network="shared_trunk"))
    assert trunk.metrics[-1]["collective_return"] != a.metrics[-1]["collective_return"] or (
        trunk.transcript_digest != a.transcript_digest
    )


@pytest.mark.parametrize("algo", ["ippo", "dpo", "ps", "vs", "cl", "iql"])
def test_refused_where_it_does_not_apply(algo):
    with pytest.raises(ConfigError, match="applies to as, as_peer, ss only"):
        _config(algo, network="shared_trunk")


def test_bad_values_give_one_line_and_status_2(capsys):
    assert check_command(["train", "--algo", "ippo", "--network", "shared_trunk"]) == 2
    assert check_command(["train", "--algo", "as", "--network", "trunk"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "applies to" in err[0] and "unknown value 'trunk'" in err[1]


def test_bench_command_checks_its_names(capsys):
    assert check_command(["bench", "networks", "end_to_end"]) == 0
    assert check_command(["bench", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown benchmark(s) nowhere" in err
