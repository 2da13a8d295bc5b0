"""Configs: every shipped YAML loads; unknown keys and wrong types are one-line errors."""

from pathlib import Path

import pytest

from forecast.config import DemoConfig, ModelConfig, PlotConfig, RolloutConfig, RunConfig, TrainConfig, VerifyConfig
from pipelines.config import PrepareConfig, load_config, parse_overrides
from pipelines.errors import InputError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KINDS = {
    "data/era5.yaml": PrepareConfig, "data/swe.yaml": PrepareConfig, "models/sfno.yaml": ModelConfig,
    "models/afno.yaml": ModelConfig, "models/dyffusion.yaml": ModelConfig, "models/sfno-shpe.yaml": ModelConfig,
    "models/sfno-tucker.yaml": ModelConfig, "models/sfno-cp.yaml": ModelConfig, "models/sfno-t1.yaml": ModelConfig, "train.yaml": TrainConfig, "rollout.yaml": RolloutConfig,
    "verify.yaml": VerifyConfig, "operational.yaml": RunConfig, "demo.yaml": DemoConfig, "plot.yaml": PlotConfig,
    "operational-grib.yaml": RunConfig,
}


@pytest.mark.parametrize("name,cls", KINDS.items())
def test_shipped_configs_load(name, cls):
    assert isinstance(load_config(cls, CONFIGS / name), cls)


def test_every_config_file_is_covered():
    shipped = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")}
    assert shipped == set(KINDS)


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("lr: 0.001\nmodel:\n  embed_dimm: 32\n")
    with pytest.raises(InputError, match=r"train.yaml: unknown key 'model.embed_dimm'"):
        load_config(TrainConfig, path)


def test_wrong_type_names_key(tmp_path):
    path = tmp_path / "rollout.yaml"
    path.write_text("members: many\n")
    with pytest.raises(InputError, match=r"rollout.yaml: key 'members'"):
        load_config(RolloutConfig, path)


def test_overrides_win_and_parse_yaml():
    cfg = load_config(TrainConfig, CONFIGS / "train.yaml", ["lr=3e-4", "model.architecture=afno", "variables=[gh,u]"])
    assert cfg.lr == pytest.approx(3e-4)
    assert cfg.model.architecture == "afno"
    assert cfg.variables == ["gh", "u"]
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_overrides(["lr"])


def test_literal_choices_are_enforced():
    with pytest.raises(InputError, match="architecture"):
        load_config(ModelConfig, None, ["architecture=unet"])


def test_demo_yaml_is_what_forecast_demo_runs_without_config():
    """`forecast demo` with no --config uses DemoConfig's defaults: configs/demo.yaml must say the same."""
    assert load_config(DemoConfig, CONFIGS / "demo.yaml").model_dump() == DemoConfig().model_dump()


def test_negative_input_noise_is_refused_at_load(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("input_noise: -0.1\n")
    with pytest.raises(InputError, match=r"train.yaml: key 'input_noise'.*greater than or equal to 0"):
        load_config(TrainConfig, path)


def test_the_config_literals_name_every_metric_and_region_of_verification():
    """The config's Literal types (checked at load time) and the verification tables agree."""
    from typing import get_args

    from forecast.config import MetricName, RegionName
    from forecast.verify.regions import REGIONS
    from forecast.verify.registry import METRICS

    assert list(get_args(MetricName)) == list(METRICS)
    assert list(get_args(RegionName)) == list(REGIONS)


def test_overriding_one_key_of_a_section_keeps_the_sections_own_defaults():
    """DemoConfig.train is a TrainConfig with the demo's values: `train.rollout_steps=2` must
    not reset its epochs, step and learning rate to TrainConfig's class defaults."""
    from pipelines.config import load_config

    demo = load_config(DemoConfig, None, ["train.rollout_steps=2", "swe.grid=legendre-gauss:96x192",
                                          "stochastic.perturbation.amplitude=0.3"])
    default = DemoConfig()
    assert demo.train.rollout_steps == 2 and demo.train.epochs == default.train.epochs != TrainConfig().epochs
    assert demo.train.step_hours == default.train.step_hours and demo.train.lr == default.train.lr
    assert demo.swe.grid == "legendre-gauss:96x192" and demo.swe.days == default.swe.days
    assert demo.stochastic.perturbation.kind == default.stochastic.perturbation.kind == ["none"]
    assert demo.stochastic.perturbation.amplitude == 0.3
