"""The command line: runs write their files; bad input gets one line and exit status 2."""

import json
import subprocess
import sys

import pytest

from confide.cli import main


def _run_cli(*args: str, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "confide", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--env", "nowhere"], "unknown environment"),
        (["train", "--algo", "magic"], "unknown algorithm"),
        (["train", "--agents", "1"], "must be in 2..64"),
        (["train", "--seed", "-3"], "non-negative"),
        (["train", "--updates", "0"], "updates"),
        (["train", "--batch", "x"], "invalid int"),
        (["compare", "--algos", "as,nope"], "unknown algorithm"),
        (["compare", "--seeds", "0"], "--seeds"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content,suffix,needle",
    [
        ('{"train": {"updatez": 3}}', ".json", "unknown key(s) updatez"),
        ('{"train": {"updates": "many"}}', ".json", "expected an integer"),
        ('{"env": {"agents": 2.5}}', ".json", "expected an integer"),
        ('{"algo": {"rho": -1}}', ".json", "rho must be >= 0"),
        ("[train]\nbatch = true\n", ".toml", "expected an integer"),
        ("[train\n", ".toml", "not valid toml"),
        ("{not json", ".json", "not valid json"),
        ('{"colour": 1}', ".json", "unknown key(s) colour"),
        ("[1, 2]", ".json", "top level"),
    ],
)
def test_bad_config_files_give_one_line_and_status_2(tmp_path, capsys, content, suffix, needle):
    path = tmp_path / f"c{suffix}"
    path.write_text(content)
    assert main(["train", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err.lower()


def test_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "absent.json")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_train_writes_config_metrics_and_summary_and_flags_override_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nupdates = 5\nbatch = 2\n[env]\nagents = 3\n")
    out = tmp_path / "run"
    proc = _run_cli(
        "train", "--config", str(cfg), "--updates", "2", "--algo", "ss", "--out", str(out), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    assert str(out) in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["updates"] == 2 and config["env"]["agents"] == 3 and config["algo"]["name"] == "ss"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [0, 1]
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "collective_return",
        "optimal_collective_return",
        "defect_collective_return",
        "normalized_return",
        "bytes_sent",
        "bytes_per_agent_per_update",
        "env_steps",
        "updates",
        "wall_seconds",
        "seed",
        "algo",
        "env",
    ):
        assert key in summary
    assert summary["optimal_collective_return"] == -90.0 and summary["defect_collective_return"] == -450.0
    assert summary["env_steps"] == 2 * 2 * 30


def test_compare_writes_report_with_plots(tmp_path):
    out = tmp_path / "cmp"
    proc = _run_cli(
        "compare",
        "--agents",
        "2",
        "--algos",
        "as,ippo",
        "--seeds",
        "2",
        "--updates",
        "2",
        "--batch",
        "2",
        "--workers",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text()
    assert "| as | 2 |" in report and "| ippo | 2 |" in report
    lines = report.splitlines()
    at = lines.index("| P(row > column) | as | ippo |")
    as_row, ippo_row = (line.split(" | ") for line in lines[at + 2 : at + 4])
    p_as, p_ippo = (float(cell.strip("*").split()[0]) for cell in (as_row[2], ippo_row[1]))
    assert as_row[1] == "—" and p_as + p_ippo == 1.0  # P(as > ippo) + P(ippo > as)
    assert "data:image/png;base64," in (out / "report.html").read_text()  # one self-contained page
    for png in (
        "learning_curves.png",
        "final_normalized_return.png",
        "bytes_per_agent_per_update.png",
        "heads.png",
    ):
        assert (out / png).stat().st_size > 1000
