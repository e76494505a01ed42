"""``confide reproduce`` (issue 10): every figure file parses and expands to valid configs at both
scales without training; each paper's own payoffs are enforced; the claim's checks give the verdicts
one derives by hand; a figure runs end to end into ``result.md``; the results page keeps every
record under concurrent updates; bad input gets one line and exit status 2."""

import json
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

import confide.core.trainer as trainer
from confide.cli import main
from confide.core.dpo import adapt_beta
from confide.experiments.config import ConfigError, config_from_dict
from confide.experiments.figure_measure import MSE_EXPECT, check_expectation, recheck, run_measures
from confide.experiments.figure_spec import (
    FIGURES_DIR,
    SCALES,
    figure_from_dict,
    figure_ids,
    load_figure,
    load_figures,
    parse_expectation,
    point_label,
)
from confide.experiments.hyperparameters import dpo_config
from confide.experiments.reproduce import prepare
from confide.experiments.reproduce_all import panel_groups
from confide.experiments.results_page import read_records, record_result, regenerate, render, verdict
from confide.experiments.sweep import expand

FIGURES = load_figures()
RUNNABLE = [f for f in FIGURES if f.runnable and f.metric != "exact"]


def test_every_figure_of_the_issue_has_a_file():
    ids = set(figure_ids())
    for prefix in (
        "as_fig2_", "as_fig3_", "as_fig4_", "as_fig5_", "as_fig6", "as_fig7",
        "ss_fig1_2_", "ss_fig3", "ss_fig4_", "ss_fig5", "ss_fig8",
        "dpo_fig1a", "dpo_fig1b", "dpo_fig2_5_", "dpo_fig9", "dpo_fig11",
    ):  # fmt: skip
        assert any(i.startswith(prefix) for i in ids), prefix
    assert {f"as_fig2_{e}" for e in ("cleanup", "harvest", "navigation", "exchange", "predation")} <= ids


@pytest.mark.parametrize("figure", RUNNABLE, ids=lambda f: f.id)
@pytest.mark.parametrize("scale", SCALES)
def test_figure_expands_to_valid_configs(figure, scale):
    runs = expand(figure.sweep(scale))  # validates every config
    assert runs and len({run_id for run_id, _ in runs}) == len(runs)
    configs = [config_from_dict(data) for _, data in runs]
    if figure.paper in ("as", "ss"):  # each paper's own C. Predation payoffs (decision 1)
        assert all(c.env.scheme == figure.paper for c in configs if c.env.name == "predation")
    if scale == "paper":
        assert len(figure.sweep(scale).seeds) == 5  # all three papers state 5 seeds
    assert figure.scales[scale].budget and figure.claim.startswith("Fig.")


def test_quick_is_smaller_than_paper():
    for f in RUNNABLE:
        quick, paper = (expand(f.sweep(s)) for s in SCALES)
        size = [
            sum(d["train"]["updates"] * d["train"].get("batch", 16) for _, d in r) for r in (quick, paper)
        ]
        assert size[0] * 100 < size[1], f.id


def test_no_figure_is_blocked_and_a_blocked_one_says_why():
    assert [f.id for f in FIGURES if f.blocked] == []  # every figure of the issue runs
    fig = figure_from_dict("x", _minimal(blocked="needs a key the config lacks"), Path("x.toml"))
    assert not fig.runnable
    row = next(line for line in render([fig], {}).splitlines() if line.startswith("| `x`"))
    assert "cannot run yet:** needs a key the config lacks" in row


def test_dpo_fig9_sets_delta_and_omega_and_the_stochastic_game_uses_d_target_0_1():
    configs = [config_from_dict(d) for _, d in expand(load_figure("dpo_fig9").sweep("quick"))]
    pairs = {(dpo_config(c).delta, dpo_config(c).omega) for c in configs}
    assert pairs == {(d, w) for d in (1.1, 1.5, 3.0) for w in (2.0, 4.0, 6.0)}
    game = {"env": {"name": "stochastic_game", "reward": "team"}}
    assert dpo_config(config_from_dict({**game, "algo": {"name": "dpo"}})).d_target == 0.1  # DPO App. B
    assert dpo_config(config_from_dict({**game, "algo": {"name": "ippo_kl"}})).d_target == 0.1
    mpe = dpo_config(config_from_dict({"env": {"name": "mpe_spread"}, "algo": {"name": "dpo"}}))
    assert (mpe.d_target, mpe.delta, mpe.omega) == (0.01, 1.5, 2.0)  # Eq. 21's defaults
    for bad in ({"delta": 1.0}, {"omega": 0.5}, {"delta": "x"}):
        with pytest.raises(ConfigError, match="algo."):
            config_from_dict({"algo": {"name": "dpo", **bad}})


def test_delta_and_omega_change_eq_21():
    beta, target = torch.tensor([1.0, 1.0, 1.0]), 0.1
    measured = torch.tensor([0.2, 0.12, 0.05])  # above 0.1·1.5; inside [0.1/1.5, 0.1·1.5]; below 0.1/1.5
    assert adapt_beta(beta, measured, target, 1.5, 2.0).tolist() == [2.0, 1.0, 0.5]
    assert adapt_beta(beta, measured, target, 1.1, 6.0).tolist() == pytest.approx([6.0, 6.0, 1 / 6])
    assert adapt_beta(beta, measured, target, 3.0, 4.0).tolist() == [1.0, 1.0, 1.0]


def test_exact_figure_has_parameters_at_both_scales():
    fig = load_figure("dpo_fig11")
    assert fig.exact_params("paper") == {"m_hat": 0.1, "c": 10.0, "iterations": 2000}
    assert fig.exact_params("quick")["iterations"] <= 2000


def _minimal(**changes):
    data = {
        "title": "t",
        "paper": "as",
        "figure": "Fig. 2",
        "claim": "Fig. 2: x",
        "metric": "return",
        "base": {"env": {"name": "predation", "agents": 3, "scheme": "as"}},
        "grid": {"algo.name": ["as", "vs"]},
        "scales": {"quick": {"budget": "b", "seeds": 2}, "paper": {"budget": "b"}},
    }
    data.update(changes)
    return data


def test_figure_files_are_checked():
    figure_from_dict("x", _minimal(expect=["as > vs"]), Path("x.toml"))
    bad = [
        (_minimal(base={"env": {"name": "predation"}}), "env.scheme = 'as'"),  # default payoffs refused
        (_minimal(paper="ss"), "env.scheme = 'ss'"),
        (_minimal(expect=["as > ps"]), "not a grid point"),
        (_minimal(expect=["as ~ vs"]), "is not"),
        (_minimal(scales={"quick": {"budget": "b"}}), "exactly the scales"),
        (_minimal(scales={"quick": {"budget": ""}, "paper": {"budget": "b"}}), "budget"),
        (_minimal(metric="magic"), "metric"),
        (_minimal(colour="red"), "unknown key"),
    ]
    for data, needle in bad:
        with pytest.raises(ConfigError, match=needle):
            figure_from_dict("x", data, Path("x.toml"))


def test_labels_name_grid_points():
    assert point_label({"algo.name": "as"}, ["algo.name"]) == "as"
    assert point_label({"algo.rho": 0.1}, ["algo.rho"]) == "rho=0.1"
    keys = ["topology.kind", "topology.period"]
    assert point_label({"topology.kind": "radius", "topology.period": 2}, keys) == "kind=radius,period=2"
    assert load_figure("as_fig5_predation").labels("quick") == ["rho=0", "rho=0.1"]


def test_checks_give_the_verdicts_derived_by_hand():
    high, low = np.array([0.9, 0.92, 0.91, 0.93, 0.9]), np.array([0.5, 0.52, 0.49, 0.51, 0.5])
    scores = {"a": high, "b": low, "c": high + 0.001}
    # P(c > a) = 16/25 (c is a + 0.001 seed by seed; ties none); a's IQM is 0.91 (one seed cut each side)
    assert check_expectation(parse_expectation("a > b", "t"), scores)[1] == (
        "holds (P(a > b) = 1.00 [1.00, 1.00], rank test p = 0.004, 5 vs 5 seeds)"  # 1/252
    )
    assert check_expectation(parse_expectation("b > a", "t"), scores)[1].startswith("does not hold")
    assert check_expectation(parse_expectation("a > c", "t"), scores)[1].startswith("does not hold")
    assert check_expectation(parse_expectation("c > a", "t"), scores)[1].startswith(
        "not shown: right direction (P(c > a) = 0.64 ["
    )
    assert check_expectation(parse_expectation("a >= c", "t"), scores)[1].startswith(
        "holds: not reliably below (P(a > c) = 0.36"
    )
    assert check_expectation(parse_expectation("b >= a", "t"), scores)[1].startswith(
        "does not hold: a higher"
    )
    assert check_expectation(parse_expectation("a >= 0.85", "t"), scores)[1] == "holds (95% interval above)"
    assert check_expectation(parse_expectation("a >= 0.905", "t"), scores)[1].startswith("IQM reaches it")
    assert check_expectation(parse_expectation("b >= 0.9", "t"), scores)[1] == "does not hold"
    one = {"a": np.array([1.0]), "b": np.array([0.0, 0.1])}
    assert check_expectation(parse_expectation("a > b", "t"), one)[1].startswith("too few seeds")


def test_a_claim_needs_the_rank_test_as_well_as_the_bootstrap():
    """DPO Fig. 1(a)'s dpo vs dpo_no_kl at 400 updates: the bootstrap interval of P(dpo > dpo_no_kl) lies
    above 1/2, but the exact rank test gives p = 2/20 (one run of dpo is below one of dpo_no_kl)."""
    dpo, no_kl = np.array([0.3553, 0.3155, 0.2731]), np.array([0.2922, 0.2416, 0.2592])  # per seed
    verdict = check_expectation(parse_expectation("dpo > dpo_no_kl", "t"), {"dpo": dpo, "dpo_no_kl": no_kl})[
        1
    ]
    assert (
        verdict.startswith("not shown: right direction (P(dpo > dpo_no_kl) = 0.89 [")
        and "p = 0.1," in verdict
    )
    apart = {"a": np.array([3.0, 4.0, 5.0]), "b": np.array([0.0, 1.0, 2.0]), "c": np.array([3.0, 4.0])}
    assert "rank test p = 0.05," in check_expectation(parse_expectation("a > b", "t"), apart)[1]
    assert check_expectation(parse_expectation("a > b", "t"), apart)[1].startswith("holds")
    assert check_expectation(parse_expectation("c > b", "t"), apart)[1].startswith(
        "not shown"
    )  # 2 seeds: p >= 0.1
    with_nan = {"a": np.array([3.0, np.nan, 4.0, 5.0]), "b": apart["b"]}  # a seed without a score is left out
    assert "3 vs 3 seeds" in check_expectation(parse_expectation("a > b", "t"), with_nan)[1]


def test_a_figures_verdict_counts_its_checks():
    def rec(*verdicts):
        return {"checks": [{"verdict": v} for v in verdicts]}

    assert (
        verdict(rec("holds (P(a > b) = 1.00)", "as the paper reports")) == "reproduced (2 of 2 checks hold)"
    )
    assert verdict(rec("holds: not reliably below", "not shown: right direction")).startswith("partly")
    assert verdict(rec("does not hold (P(a > b) = 0.2)", "IQM reaches it, the interval does not")).startswith(
        "not"
    )
    assert verdict(rec()).startswith("no check")


def test_ss_averaged_return_is_collective_over_n_t():
    # N = 2, T = 30 (120 env steps in the first update of 4 episodes), collective −60 → −60 / (2·30) = −1.
    summary = {
        "agents": 2,
        "collective_return": -60.0,
        "normalized_return": 0.5,
        "bytes_per_agent_per_update": 8,
    }
    metrics = [{"env_steps": 120, "actions/all_cooperate": 0.25, "actions/none_cooperate": 0.5}] * 3
    m = run_measures(summary, metrics, batch=4)
    assert m["averaged"] == -1.0 and m["team"] == -30.0 and m["collective"] == -60.0
    assert (m["cc"], m["cd"], m["dd"]) == (0.25, 0.25, 0.5)
    assert np.isnan(m["mse_last"])


def test_a_figure_runs_end_to_end_and_writes_its_result(tmp_path):
    page = tmp_path / "RESULTS.md"
    out = tmp_path / "as_fig6"
    shrink = {"updates": 2, "batch": 2, "seeds": 2}
    job = prepare("as_fig6", "quick", out=out, workers=1, overrides=shrink, page=page, progress=False)
    record, failed = job.run()
    assert not failed and record["runs_complete"] == 6 and record["custom"]
    text = (out / "result.md").read_text()
    assert "Independent PPO achieves the lowest total return" in text  # the claim beside the numbers
    assert "| `as` | 2/2 |" in text and "centralized_ppo > as" in text and "never defines" in text
    assert (out / "learning_curves.png").stat().st_size > 0 and (out / "report.md").exists()
    assert "data:image/png;base64," in (out / "result.html").read_text()  # the page with its plots inside
    assert json.loads((out / "result.json").read_text())["points"][0]["label"] == "independent_ppo"
    assert not page.exists()  # a custom shrink never reaches the results page
    again, _ = prepare("as_fig6", "quick", out=out, workers=1, overrides=shrink, progress=False).run()
    assert again["points"] == record["points"]  # a rerun trains nothing and measures the same


def test_measure_only_trains_nothing_and_says_how_much_is_complete(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("measure-only trained a run"))
    page = tmp_path / "RESULTS.md"
    shrink = {"updates": 2, "batch": 2, "seeds": 2}
    job = prepare("as_fig6", "paper", out=tmp_path / "f6", overrides=shrink, page=page, progress=False)
    job.train = False
    record, failed = job.run()
    assert not failed and record["runs_complete"] == 0 and record["reduced"]
    row = next(line for line in page.read_text().splitlines() if line.startswith("| `as_fig6`"))
    assert "**Reduced scale**" in row and "Only 0 of 6 runs complete." in row


def test_exact_figure_runs_and_fills_its_row(tmp_path):
    page = tmp_path / "docs" / "RESULTS.md"
    record, failed = prepare("dpo_fig11", "quick", out=tmp_path / "f11", page=page).run()
    assert not failed and [c["verdict"] for c in record["checks"]] == [
        "holds",
        "holds",
        "as the paper reports",
    ]
    assert (tmp_path / "f11" / "dpo_exact.png").exists()
    text = page.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `dpo_fig11`"))
    assert "4/4 games complete" in row and "not run yet" in row  # quick check filled, paper column empty
    assert "not run yet" in next(line for line in text.splitlines() if line.startswith("| `dpo_fig9`"))
    assert read_records(page)["dpo_fig11"]["quick"]["id"] == "dpo_fig11"


def _fake_record(fig_id: str, scale: str) -> dict:
    return {
        "id": fig_id,
        "scale": scale,
        "date": "2025-01-01",
        "shape": {"runs": 2, "points": 1, "seeds": 2, "updates": 3, "batch": 2},
        "runs_complete": 2,
        "failed": [],
        "wall_seconds": 1.0,
        "main_unit": "unit",
        "points": [{"label": "as", "n": 2, "per_seed": [0.5, 0.7]}],
        "checks": [{"expect": "as >= 0.9", "measured": "x", "verdict": "does not hold --> <!--"}],
    }


def test_a_reduced_paper_run_is_shown_as_reduced_until_a_full_one_replaces_it(tmp_path):
    page, fig_id = tmp_path / "RESULTS.md", RUNNABLE[0].id
    reduced = {**_fake_record(fig_id, "paper"), "custom": True, "reduced": True, "command": "c --updates 3"}
    record_result(page, reduced)
    row = next(line for line in page.read_text().splitlines() if line.startswith(f"| `{fig_id}`"))
    assert "**Reduced scale** (`c --updates 3`): **not reproduced (0 of 1 checks hold).** 2025" in row
    assert "as 0.600 [" in row
    record_result(
        page, {**_fake_record(fig_id, "paper"), "points": [{"label": "as", "n": 1, "per_seed": [1]}]}
    )
    row = next(line for line in page.read_text().splitlines() if line.startswith(f"| `{fig_id}`"))
    assert "Reduced" not in row and "as 1.000" in row
    assert set(read_records(page)[fig_id]) == {"paper", "paper_reduced"}  # both kept, the full one shown


def test_results_page_keeps_every_record_under_concurrent_updates(tmp_path):
    page = tmp_path / "RESULTS.md"
    ids = [f.id for f in RUNNABLE[:8]]
    threads = [threading.Thread(target=record_result, args=(page, _fake_record(i, "paper"))) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read_records(page)
    assert set(records) == set(ids)  # no update lost
    row = next(line for line in page.read_text().splitlines() if line.startswith(f"| `{ids[0]}`"))
    assert "as 0.600 [" in row and "`as >= 0.9` does not hold" in row
    regenerate(page)  # from the figure files, keeping the records and recomputing their checks
    again = read_records(page)
    assert {i: {**again[i]["paper"], "checks": []} for i in ids} == {
        i: {**records[i]["paper"], "checks": []} for i in ids
    }
    for i in ids:  # the fake "as >= 0.9" is gone; each figure's own expectations, checked on 0.5, 0.7
        figure = next(f for f in RUNNABLE if f.id == i)
        assert [c["expect"] for c in again[i]["paper"]["checks"]] == [e.text for e in figure.expect]


def test_list_names_every_figure_and_its_scales(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for fig_id in figure_ids():
        assert f"{fig_id}  [" in out
    assert "CANNOT RUN YET" not in out and "quick: " in out and "paper: " in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["reproduce", "as_fig99"], "unknown figure 'as_fig99'"),
        (["reproduce"], "give one of"),
        (["reproduce", "as_fig6", "--list"], "give one of"),
        (["reproduce", "--all", "as_fig6"], "give one of"),
        (["reproduce", "as_fig6", "as_fig99"], "unknown figure 'as_fig99'"),
        (["reproduce", "as_fig6", "as_fig6"], "given twice"),
        (["reproduce", "--all", "--workers", "0"], "--workers"),
        (["reproduce", "as_fig6", "--scale", "huge"], "invalid choice"),
        (["reproduce", "as_fig6", "--workers", "0"], "--workers"),
        (["reproduce", "as_fig6", "--updates", "0"], "updates"),
        (["reproduce", "dpo_fig11", "--updates", "3"], "do not apply"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_figure_files_live_in_the_package():
    assert FIGURES_DIR.is_dir() and len(figure_ids()) == len(FIGURES) >= 30


def test_several_figures_share_one_pool_and_write_an_index(tmp_path, monkeypatch, capsys):
    root, page = tmp_path / "all", tmp_path / "RESULTS.md"
    args = ["reproduce", "as_fig6", "as_fig7", "--out", str(root), "--page", str(page), "--workers", "1"]
    shrink = ["--updates", "2", "--batch", "2", "--seeds", "2", "--no-progress"]
    assert main(args + shrink) == 0
    out = capsys.readouterr().out
    assert "as_fig6: 6/6 complete." in out and "as_fig7: 2/2 complete." in out
    fig6, fig7 = root / "as_fig6_quick_updates2_batch2_seeds2", root / "as_fig7_quick_updates2_batch2_seeds2"
    assert (fig6 / "result.md").exists() and (fig7 / "heads.png").exists()
    index = (root / "index.md").read_text()
    assert f"[as_fig6]({fig6.name}/result.md)" in index and "Wall time of the call" in index
    assert json.loads((fig7 / "result.json").read_text())["pooled_figures"] == 2
    assert not page.exists()  # a shrunk quick stays off the results page
    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("a complete run was trained again"))
    assert main(args + shrink) == 0  # the rerun measures again and trains nothing


def test_figure_and_sweep_files_are_package_data():
    pyproject = tomllib.loads((FIGURES_DIR.parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["confide.experiments"]
    shipped = {p for g in globs for p in FIGURES_DIR.parent.glob(g)}
    wanted = set(FIGURES_DIR.glob("*.toml")) | set((FIGURES_DIR.parent / "sweeps").glob("*.toml"))
    assert wanted and wanted <= shipped


def test_recheck_recomputes_the_claim_from_per_seed_scores_and_keeps_the_measured_mse_check():
    mse = {"expect": MSE_EXPECT, "measured": "MSE 0.2 → 0.1", "verdict": "holds: fell in 3 of 3 runs"}
    stale = {"expect": "as >= 0.5", "measured": "old", "verdict": "holds (p = 0.01)"}
    record = {"points": [{"label": "as", "n": 3, "per_seed": [0.95, 0.97, 0.99]}], "checks": [stale, mse]}
    checks = recheck(record, load_figure("as_fig7"))["checks"]
    assert checks == [
        {
            "expect": "as >= 0.9",
            "measured": "as 0.970 [0.950, 0.990]",
            "verdict": "holds (95% interval above)",
        },
        mse,
    ]
    exact = {"games": [], "checks": [stale]}
    assert recheck(exact, load_figure("dpo_fig11")) == exact  # no seeds: kept as measured


def test_one_paper_figure_split_by_environment_is_drawn_as_panels(tmp_path):
    groups = panel_groups([f for f in load_figures() if f.runnable])
    assert [f.id for f in groups["as_fig2"]] == [
        f"as_fig2_{e}" for e in ("cleanup", "exchange", "harvest", "navigation", "predation")
    ]
    assert set(groups) == {"as_fig2", "as_fig3", "as_fig4", "as_fig5", "dpo_fig2_5", "ss_fig1_2", "ss_fig4"}
    root, page = tmp_path / "all", tmp_path / "RESULTS.md"
    args = ["reproduce", "as_fig3_n20", "as_fig3_n30", "--out", str(root), "--page", str(page)]
    assert (
        main([*args, "--workers", "1", "--updates", "1", "--batch", "1", "--seeds", "1", "--no-progress"])
        == 0
    )
    assert (root / "as_fig3_panels.png").read_bytes()[:4] == b"\x89PNG"
    assert "![as_fig3_panels](as_fig3_panels.png)" in (root / "index.md").read_text()
    assert (root / "as_fig3_n20_quick_updates1_batch1_seeds1" / "final_scores.png").stat().st_size > 1000
    assert "data:image/png;base64," in (root / "index.html").read_text()


def test_confide_report_regenerates_the_page_with_rechecked_claims(tmp_path, capsys):
    page = tmp_path / "RESULTS.md"
    record = {
        **_fake_record("as_fig7", "paper"),
        "points": [{"label": "as", "n": 3, "per_seed": [0.95, 0.97, 0.99]}],
    }
    record_result(page, record)  # stored with the fake check "as >= 0.9 does not hold"
    assert main(["report", "--page", str(page)]) == 0
    checks = read_records(page)["as_fig7"]["paper"]["checks"]
    assert checks == [
        {
            "expect": "as >= 0.9",
            "measured": "as 0.970 [0.950, 0.990]",
            "verdict": "holds (95% interval above)",
        }
    ]
    assert "results page written to" in capsys.readouterr().out
    assert main(["report", "--page", str(tmp_path / "nope.md")]) == 2
    assert "no results page" in capsys.readouterr().err
