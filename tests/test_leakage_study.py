"""The leakage study (issue 7): trainer hooks, the encrypted transcript, a tiny end-to-end study with its
exact and statistical controls, resumption, and the ``leak`` command's validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from confide.channels.encryption import ENVELOPE_OVERHEAD_BYTES
from confide.cli import check_command
from confide.core.trainer import train
from confide.experiments import leakage_shadow_runs
from confide.experiments.config import ConfigError
from confide.experiments.leakage_attack import screen
from confide.experiments.leakage_shadow_runs import decrypt_wire
from confide.experiments.leakage_study import LeakStudy, run_study
from confide.privacy.attacks import feature_names
from confide.privacy.observers import ObserverView

TINY = dict(runs=8, updates=2, batch=2, topology="complete", n_bootstrap=200)


# --- trainer hooks ------------------------------------------------------------------------------------


def test_trainer_hooks_observe_keep_payloads_and_env_kwargs():
    config = LeakStudy(algos=("as",), encrypt=False, **TINY).run_config("as", 3)
    seen = []
    hooked = train(
        config,
        env_kwargs={"approach_weights": [1.0] * 4},  # w = 1: the papers' rules
        observe=lambda update, rollout: seen.append((update, tuple(rollout.states.shape))),
        keep_payloads=True,
    )
    plain = train(config)
    assert seen == [(0, (30, 2, 4)), (1, (30, 2, 4))]  # [T, B, S] once per update
    assert hooked.metrics == plain.metrics and hooked.transcript_digest == plain.transcript_digest
    assert plain.wire_payloads == () and len(hooked.wire_payloads) > 0


def test_encrypted_run_trains_as_the_plain_run_and_its_keys_open_the_wire():
    plain_cfg = LeakStudy(algos=("as",), encrypt=False, **TINY).run_config("as", 1)
    enc_cfg = LeakStudy(algos=("as",), encrypt=True, **TINY).run_config("as", 1)
    plain, enc = train(plain_cfg, keep_payloads=True), train(enc_cfg, keep_payloads=True)
    for a, b in zip(plain.metrics, enc.metrics, strict=True):  # every envelope arrives intact
        assert {k: v for k, v in a.items() if k != "bytes_sent"} == {
            k: v for k, v in b.items() if k != "bytes_sent"
        }
    assert all(set(m.payload) == {"ct"} for m in enc.wire_payloads)
    opened = decrypt_wire(enc_cfg, enc.wire_payloads)
    assert [m.encoded_payload() for m in opened] == [m.encoded_payload() for m in plain.wire_payloads]
    sizes = [m.payload_bytes() for m in enc.wire_payloads]
    assert sizes == [m.payload_bytes() + ENVELOPE_OVERHEAD_BYTES for m in plain.wire_payloads]


# --- a tiny study ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """ippo (no messages), as (distributions), cl (rewards in plaintext to the central unit)."""
    study = LeakStudy(algos=("ippo", "as", "cl"), **TINY)
    out = tmp_path_factory.mktemp("leak")
    return study, out, run_study(study, out, progress=False)


def test_tiny_study_writes_table_plot_and_json(tiny):
    study, out, result = tiny
    table = result.table.read_text()
    for algo in study.algos:
        for view in study.views:
            assert f"| {algo} | {view} " in table
    assert result.plot.stat().st_size > 0
    rows = json.loads((out / "leakage.json").read_text())["results"]
    assert len(rows) == len(study.algos) * len(study.views) == 18
    assert sorted(p.name for p in (out / "shadow" / "as").iterdir()) == [f"run{k:05d}.npz" for k in range(8)]


def test_views_of_a_message_free_algorithm_add_exactly_nothing_to_behaviour(tiny):
    study, _, result = tiny
    t0 = result.reports[("ippo", "T0")].attack
    for view in ("T1", "T2", "T2enc", "T3", "T4"):
        r = result.reports[("ippo", view)]
        assert np.array_equal(r.attack.scores, t0.scores)  # same features, same folds: the same attack
        for excess in (r.excess.bits, r.excess.auc):
            assert (excess.estimate, excess.low, excess.high) == (0.0, 0.0, 0.0)


def test_encrypted_link_shows_sizes_only_and_the_attack_on_it_is_at_chance(tiny):
    study, out, result = tiny
    view = ObserverView("T2", (0, 1), (), np.zeros((1, 1, 4), np.float32), np.zeros((1, 1, 4), np.int64), 2)
    names = feature_names(view, study.target)
    runs = [np.load(out / "shadow" / "as" / f"run{k:05d}.npz") for k in range(study.runs)]
    enc = np.stack([r["features_T2enc"] for r in runs])
    plain = np.stack([r["features_T2"] for r in runs])
    col = {n: i for i, n in enumerate(names)}
    for kind in ("policy", "anticipation"):
        for role in ("from_target", "to_target"):
            count = plain[:, col[f"{kind}/{role}/count"]]
            assert count.min() > 0
            np.testing.assert_array_equal(enc[:, col[f"{kind}/{role}/count"]], count)
            np.testing.assert_array_equal(
                enc[:, col[f"{kind}/{role}/bytes_total"]],
                plain[:, col[f"{kind}/{role}/bytes_total"]] + ENVELOPE_OVERHEAD_BYTES * count,
            )
            assert np.ptp(enc[:, col[f"{kind}/{role}/bytes_total"]]) == 0  # complete graph: fixed sizes
            assert enc[:, col[f"{kind}/{role}/col0_mean"]].max() == 0  # no readable payload
    r = result.reports[("as", "T2enc")]
    assert r.attack.auc.contains(0.5) and r.attack.bits.low == 0.0 and r.excess.bits.contains(0.0)


def test_positive_control_plaintext_rewards_are_found(tiny):
    """CL sends each agent's rewards in plaintext to the central unit: the study must find the secret there
    (with 4 test runs; the shuffled control's calibration is tested in test_leakage_estimators.py)."""
    study, _, result = tiny
    server = result.reports[("cl", "T3")]  # CL's central unit reads every agent's rewards
    assert server.attack.auc.estimate == 1.0 and server.attack.bits.estimate > 0.9
    assert server.excess.bits.estimate > 0.5


def test_rerun_skips_finished_runs_and_refuses_other_settings(tiny, monkeypatch):
    study, out, result = tiny

    def no_training(*args, **kwargs):
        raise AssertionError("a cached shadow run was trained again")

    monkeypatch.setattr(leakage_shadow_runs, "shadow_run", no_training)
    again = run_study(study, out, progress=False)
    assert (
        again.table.read_text().split("| algorithm | view")[1]
        == result.table.read_text().split("| algorithm | view")[1]
    )
    with pytest.raises(ConfigError, match="updates"):
        run_study(LeakStudy(algos=("ippo",), **{**TINY, "updates": 3}), out, progress=False)


# --- pieces -----------------------------------------------------------------------------------------------


def test_secrets_are_balanced_in_pairs_and_weights_follow_them():
    study = LeakStudy(algos=("as",), runs=40, seed=5)
    secrets = np.array([study.secret(k) for k in range(40)])
    assert (secrets[0::2] + secrets[1::2] == 1).all()
    train_idx, test_idx = study.split()
    assert len(train_idx) == len(test_idx) == 20 and secrets[train_idx].sum() == 10
    for k in range(40):
        w = study.weights(k)
        assert w[study.target] == (1.5 if secrets[k] else 0.5) and set(w) <= {0.5, 1.5}
    assert LeakStudy(algos=("as",), runs=10).split()[0].tolist() == [0, 1, 2, 3, 4, 5]


def test_screen_picks_the_separating_columns():
    rng = np.random.default_rng(0)
    s = np.array([0, 1] * 10)
    x = rng.normal(size=(20, 6))
    x[:, 4] += 3 * s  # strong
    x[:, 1] = s  # perfect: constant within each class
    x[:, 2] = 7.0  # constant
    assert screen(x, s, 2).tolist() == [1, 4]
    assert 2 not in screen(x, s, 5).tolist()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["leak", "--runs", "7"], "--runs"),
        (["leak", "--env", "matrix"], "--env"),
        (["leak", "--algos", "as,nope"], "--algos"),
        (["leak", "--target", "4"], "--target"),
        (["leak", "--workers", "0"], "--workers"),
        (["leak", "--updates", "0"], "train.updates"),
    ],
)
def test_leak_command_validates_its_flags(argv, message, capsys):
    assert check_command(argv) == 2
    assert message in capsys.readouterr().err
    assert check_command(["leak", "--runs", "8", "--no-encrypt", "--algos", "ippo"]) == 0
