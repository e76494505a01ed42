"""Bad input never gets a traceback: random configs (dicts, JSON and TOML files, raw bytes) and random
command lines either validate (and, for tiny sizes, run) or end with one line and exit status 2."""

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from confide.cli import check_command, main
from confide.core.registry import build_learner
from confide.core.trainer import make_run_env
from confide.experiments.config import (
    ALGO_NAMES,
    ENV_NAMES,
    AlgoConfig,
    ConfigError,
    EnvConfig,
    PpoConfig,
    RunConfig,
    TopologyConfig,
    TrainConfig,
    config_from_dict,
)

SECTIONS = {
    "env": EnvConfig,
    "algo": AlgoConfig,
    "ppo": PpoConfig,
    "topology": TopologyConfig,
    "train": TrainConfig,
}
WORDS = [*ENV_NAMES, *ALGO_NAMES, "as", "ss", "individual", "team", "complete", "ring", "line", "radius"]
WORDS += ["random_partners", "grid", "", "none", "true", "1"]


SCALE = float(os.environ.get("CONFIDE_FUZZ_SCALE", "1"))  # e.g. 20 for a long hunt


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.integers(),
    st.floats(-2, 2),
    st.floats(),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _section(cls, keys=None):
    names = [f for f in cls.__dataclass_fields__]
    key = st.sampled_from(names) | (keys if keys is not None else st.text(max_size=8))
    return st.dictionaries(key, values, max_size=len(names))


def _config_dicts(keys=None):
    section = st.one_of(
        *[_section(cls, keys).map(lambda d, n=name: (n, d)) for name, cls in SECTIONS.items()]
    )
    junk = st.tuples(keys if keys is not None else st.text(max_size=8), values)
    return st.lists(section | junk, max_size=6).map(dict)


def _check_one_line(text: str) -> None:
    assert text and "\n" not in text.strip() and "Traceback" not in text, text


@fuzz(500)
@given(data=_config_dicts(keys=st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans())))
def test_config_dicts_validate_or_fail_in_one_line(data):
    try:
        config = config_from_dict(data)
    except ConfigError as err:
        _check_one_line(str(err))
        event("rejected")
        return
    event("valid")
    assert isinstance(config, RunConfig)
    assert config_from_dict(config.to_dict()) == config  # the resolved config reloads to itself


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"


def to_toml(data: dict) -> str:
    """A minimal TOML writer for the fuzzed dicts (None has no TOML form and is left out)."""
    plain = [
        f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict | type(None))
    ]
    tables = []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append(f"[{json.dumps(k)}]")
            tables += [f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(plain + tables) + "\n"


@fuzz(300)
@given(
    data=_config_dicts(),
    form=st.sampled_from(["json", "toml", "bytes"]),
    raw=st.binary(max_size=40),
)
def test_config_files_validate_or_fail_in_one_line_with_status_2(data, form, raw, capsys):
    capsys.readouterr()
    suffix = ".json" if form != "toml" else ".toml"
    content = {
        "json": lambda: json.dumps(data).encode(),
        "toml": lambda: to_toml(data).encode(),
        "bytes": lambda: raw,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"config{suffix}"
        path.write_bytes(content[form]())
        status = check_command(["train", "--config", str(path), "--out", str(Path(tmp) / "run")])
    err = capsys.readouterr().err
    assert status in (0, 2)
    event(f"status {status}")
    if status == 2:
        _check_one_line(err)
    else:
        assert err == ""


COMMON = ["--env", "--agents", "--scheme", "--game", "--reward", "--updates", "--batch", "--topology"]
COMMON += ["--partners", "--period", "--rho", "--threads", "--checkpoint-every", "--config", "--out"]
COMMAND_FLAGS = {
    "train": [*COMMON, "--algo", "--seed", "--resume"],
    "compare": [*COMMON, "--algos", "--seeds", "--workers"],
    "dpo-exact": ["--out", "--m-hat", "--c", "--iterations"],
    "frobnicate": ["--x"],
}
FLAGS = sorted({f for flags in COMMAND_FLAGS.values() for f in flags} | {"--no-progress"})
PLAUSIBLE = {  # mostly valid values per flag, so that many command lines pass validation
    "--env": list(ENV_NAMES),
    "--agents": ["2", "3", "8", "64"],
    "--scheme": ["as", "ss"],
    "--game": ["1", "2", "4"],
    "--reward": ["individual", "team"],
    "--topology": ["complete", "ring", "line", "random_partners", "radius"],
    "--rho": ["0", "0.1", "2.5"],
    "--algo": list(ALGO_NAMES),
    "--algos": ["as,ss", "dpo", "ippo,vs,ps"],
    "--m-hat": ["0", "0.1"],
    "--c": ["1", "10.0"],
}
junk = st.one_of(
    st.sampled_from(WORDS),
    st.integers(-5, 70).map(str),
    st.integers().map(str),
    st.floats().map(str),
    st.text(max_size=10).filter(lambda t: not t.startswith("-h") and not t.startswith("--h")),
)
tokens = st.sampled_from(FLAGS) | junk


@st.composite
def command_lines(draw) -> list[str]:
    """A command and flag/value pairs of that command (mostly plausible values), or any tokens."""
    command = draw(st.sampled_from(list(COMMAND_FLAGS)))
    if draw(st.integers(0, 3)) == 0:
        return [command, *draw(st.lists(tokens, max_size=8))]
    argv = [command]
    for flag in draw(st.lists(st.sampled_from(COMMAND_FLAGS[command]), max_size=5, unique=True)):
        plausible = st.sampled_from(PLAUSIBLE.get(flag, ["1", "2", "5"]))
        argv += [flag, draw(plausible if draw(st.integers(0, 4)) else junk)]
    return argv + draw(st.sampled_from([[], ["--no-progress"]]))


@fuzz(500)
@given(argv=command_lines())
def test_command_lines_validate_or_fail_in_one_line_with_status_2(argv, capsys):
    capsys.readouterr()
    status = check_command(argv)
    err = capsys.readouterr().err
    assert status in (0, 2)
    event(f"status {status}")
    if status == 2:
        _check_one_line(err)
        assert err.startswith("confide: error:")
    else:
        assert err == ""


def _buildable(algo: str) -> bool:
    config = RunConfig(env=EnvConfig(agents=2), algo=AlgoConfig(name=algo))
    env = make_run_env(config)
    try:
        build_learner(config, env.state_dim, env.n_actions, torch.Generator().manual_seed(0))
    except Exception:
        return False
    return True


BUILDABLE = [a for a in ALGO_NAMES if _buildable(a)]


def _option(flag, valid, invalid, clean):
    choices = valid if clean else [*valid, *invalid]
    return st.one_of(st.just([]), st.sampled_from(choices).map(lambda v: [flag, str(v)]))


def _tiny_train_args(clean: bool):
    """Tiny runs; ``clean`` draws only values valid on their own (combinations may still be invalid)."""
    return st.tuples(
        _option("--env", ["predation", "predation", "matrix"], ["nowhere"], clean),
        _option("--agents", [2, 3], [1, 65], clean),
        _option("--updates", [1, 2], [0], clean),
        _option("--batch", [1, 2], [0], clean),
        _option("--algo", BUILDABLE, ["magic"], clean),
        _option("--topology", ["complete", "ring", "radius", "random_partners"], ["star"], clean),
        _option("--partners", [1, 2], [0], clean),
        _option("--period", [1, 2], [0], clean),
        _option("--rho", [0.1, 0.0], [-1, "nan"], clean),
        _option("--checkpoint-every", [0, 1], [-1], clean),
        _option("--game", [1, 4], [5], clean),
    )


@pytest.mark.skipif(not BUILDABLE, reason="no algorithm can be built")
@fuzz(25)
@given(parts=st.booleans().flatmap(_tiny_train_args))
def test_tiny_command_lines_run_or_fail_in_one_line_with_status_2(parts, capsys):
    """The same property, actually running what validates (one or two tiny updates)."""
    args = [token for part in parts for token in part]
    if "--updates" not in args:
        args += ["--updates", "1"]
    if "--batch" not in args:
        args += ["--batch", "1"]
    if "--agents" not in args:
        args += ["--agents", "2"]
    capsys.readouterr()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        status = main(["train", *args, "--out", str(out), "--no-progress"])
        captured = capsys.readouterr()
        assert status in (0, 2), captured.err
        event(f"status {status}")
        if status == 2:
            _check_one_line(captured.err)
        else:
            assert json.loads((out / "summary.json").read_text())["complete"] is True
