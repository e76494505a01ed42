"""The channel layers in a real training run: chosen by config, never by an algorithm. Encryption is
transparent to learning and costs exactly its overhead; drops and delays are counted and never reach
an algorithm as current data; DP noise reports each agent's ε; bad channel settings are one-line errors."""

import pytest

from confide.channels import ChannelSettings
from confide.cli import main
from confide.core.trainer import train
from confide.experiments.config import (
    AlgoConfig,
    ConfigError,
    EnvConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
    config_from_dict,
)

N = 3
AEAD_AND_FRAMING = 39  # 12-byte nonce + 16-byte tag + 11 bytes of array framing per message


def _run(algo: str, channel: ChannelSettings, updates: int = 3):
    cfg = RunConfig(
        env=EnvConfig(agents=N),
        algo=AlgoConfig(name=algo),
        topology=TopologyConfig(kind="complete"),
        train=TrainConfig(updates=updates, batch=2, seed=3),
        channel=channel,
    )
    return train(cfg)


def _learning(rows):
    return [{k: v for k, v in r.items() if k != "bytes_sent"} for r in rows]


@pytest.mark.parametrize("algo", ["as", "ss", "vs", "vps", "ps", "cl", "dpo_shared"])
def test_encryption_changes_the_bytes_by_its_overhead_and_nothing_else(algo):
    plain = _run(algo, ChannelSettings())
    sealed = _run(algo, ChannelSettings(encrypt=True))
    assert _learning(sealed.metrics) == _learning(plain.metrics)
    messages = sealed.summary["channel"]["counts"]["sent"]
    assert messages > 0
    extra = sealed.summary["bytes_sent"]["total"] - plain.summary["bytes_sent"]["total"]
    assert extra == AEAD_AND_FRAMING * messages


def test_a_channel_that_loses_everything_turns_as_into_learners_that_hear_nothing():
    lost = _run("as", ChannelSettings(loss="bernoulli", loss_probability=1.0))
    counts = lost.summary["channel"]["counts"]
    assert counts["delivered"] == 0 and counts["lost"] == counts["sent"] > 0
    assert lost.summary["bytes_sent"]["total"] > 0  # sending still costs bandwidth


def test_delayed_messages_are_counted_late_and_never_used_as_current():
    delayed = _run("as", ChannelSettings(delay_rounds=1))
    counts = delayed.summary["channel"]["counts"]
    late = sum(delayed.summary["messages_late"].values())
    # K = 3 rounds per update: every message but the last round's arrives one round late
    assert late == counts["delivered"] and counts["in_flight"] == 2 * N * (N - 1)
    assert counts["sent"] == counts["delivered"] + counts["in_flight"]
    ideal = _run("as", ChannelSettings(loss="bernoulli", loss_probability=1.0))
    assert _learning(delayed.metrics) == _learning(ideal.metrics)  # stale data is never used


def test_gaussian_noise_reports_each_agents_epsilon():
    noisy = _run("as", ChannelSettings(dp_mechanism="gaussian", dp_noise_multiplier=2.0))
    privacy = noisy.summary["channel"]["privacy"]
    eps = [privacy[str(i)]["epsilon"] for i in range(N)]
    assert all(e > 0 for e in eps) and len(set(eps)) == 1  # every agent released the same count


def test_bad_channel_settings_are_one_line_config_errors(capsys):
    with pytest.raises(ConfigError, match="loss_probability must be a probability"):
        config_from_dict({"channel": {"loss": "bernoulli", "loss_probability": 1.5}})
    with pytest.raises(ConfigError, match="channel.quantisation: unknown value"):
        config_from_dict({"channel": {"quantisation": "int4"}})
    assert config_from_dict({"channel": {"dp_arrays": ["probs"]}}).channel.dp_arrays == ("probs",)


def test_the_cli_takes_channel_settings_from_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "lossy.toml"
    cfg.write_text('[channel]\nloss = "bernoulli"\nloss_probability = 2.0\n')
    code = main(
        ["train", "--config", str(cfg), "--updates", "1", "--no-progress", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "loss_probability" in err and err.count("\n") == 1


def _run_policy(algo: str, policy: str, channel: ChannelSettings, updates: int = 3):
    cfg = RunConfig(
        env=EnvConfig(agents=N),
        algo=AlgoConfig(name=algo, receiver_policy=policy),
        topology=TopologyConfig(kind="complete"),
        train=TrainConfig(updates=updates, batch=2, seed=3),
        channel=channel,
    )
    return train(cfg)


@pytest.mark.parametrize("algo", ["as", "vs", "ps"])
def test_on_a_perfect_channel_every_receiver_policy_is_the_same_run(algo):
    runs = [_run_policy(algo, p, ChannelSettings()) for p in ("skip", "hold", "zero")]
    assert runs[0].metrics == runs[1].metrics == runs[2].metrics
    assert all(r.summary["messages_filled"] == {} for r in runs)


def test_hold_reuses_the_last_parameters_and_zero_fills_uniform_distributions():
    lossy = ChannelSettings(loss="bernoulli", loss_probability=0.5)
    held = _run_policy("ps", "hold", lossy, updates=4)
    lost = held.summary["channel"]["counts"]["lost"]
    filled = held.summary["messages_filled"].get("policy_params", 0)
    assert 0 < filled <= lost  # a link that never delivered anything has nothing to hold
    assert held.summary["filled_mean_age_rounds"] >= 1
    zero = _run_policy("as", "zero", lossy)
    counts = zero.summary["channel"]["counts"]
    assert sum(zero.summary["messages_filled"].values()) == counts["lost"]
    assert zero.summary["messages_rejected"] == {}  # uniform fills are valid distributions


def test_hold_never_reuses_a_batch_message_from_an_earlier_update():
    delayed = _run_policy("vs", "hold", ChannelSettings(delay_rounds=1), updates=3)
    # VS sends one value message per link per update: a message one round late belongs to the
    # previous update's batch, so nothing may be held over.
    assert delayed.summary["messages_filled"] == {}
    assert sum(delayed.summary["messages_late"].values()) > 0
