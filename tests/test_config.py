"""Config files (TOML/YAML/JSON), --set overrides and their one-line errors."""

from __future__ import annotations

import json

import pytest
from genframe_ebm.config import EBMConfig

from genframe.config.sections import apply_overrides, build_config, parse_value
from genframe.contracts.errors import ConfigError
from genframe.util.tomlwrite import dumps


def test_defaults_are_the_reference_recipe():
    c = EBMConfig()
    assert (c.sampler.step_size, c.sampler.steps, c.sampler.noise, c.sampler.grad_clip) == (10.0, 60, 0.005, 0.03)
    assert (c.trainer.alpha, c.trainer.batch_size, c.buffer.size, c.trainer.lr, c.trainer.epochs) == (0.1, 128, 8192, 1e-4, 60)
    assert c.sampler.generate_steps == 1000 and c.buffer.fresh_prob == 0.05


@pytest.mark.parametrize("suffix,text", [
    (".toml", "[trainer]\nepochs = 3\n[sampler]\nstep_size = 5.0\n"),
    (".yaml", "trainer:\n  epochs: 3\nsampler:\n  step_size: 5.0\n"),
    (".json", '{"trainer": {"epochs": 3}, "sampler": {"step_size": 5.0}}'),
])
def test_config_files_in_every_format(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    c = build_config(EBMConfig, path=path, overrides=["trainer.epochs=4"])
    assert c.trainer.epochs == 4 and c.sampler.step_size == 5.0 and c.sampler.steps == 60


@pytest.mark.parametrize("suffix,text", [
    (".toml", "[trainer]\nepochs = 3\n"), (".yaml", "trainer:\n  epochs: 3\n"), (".json", '{"trainer": {"epochs": 3}}')])
def test_a_byte_order_mark_at_the_start_of_a_config_is_read_past(tmp_path, suffix, text):
    # Windows editors write one; TOML and JSON parsers refused it as invalid at line 1
    path = tmp_path / f"c{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert build_config(EBMConfig, path=path).trainer.epochs == 3


def test_bad_value_names_the_dotted_path_and_reason():
    with pytest.raises(ConfigError) as err:
        build_config(EBMConfig, overrides=["trainer.epochs=abc"])
    message = str(err.value)
    assert "trainer.epochs: Input should be a valid integer" in message and "got 'abc'" in message
    assert "\n" not in message and "pydantic" not in message


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"sampler\.step_sise: unknown key \(did you mean sampler\.step_size\?\)"):
        build_config(EBMConfig, overrides=["sampler.step_sise=3"])
    with pytest.raises(ConfigError, match="samplr: unknown key"):
        build_config(EBMConfig, data={"samplr": {"steps": 3}})


@pytest.mark.parametrize("override,fragment", [
    ("trainer.epochs", "must look like section.key=value"),
    ("=3", "must look like section.key=value"),
    ("trainer..epochs=3", "not a dotted key"),
    ("seed.x=1", "seed: Input should be a valid integer"),
    ("trainer.lr=-1", "trainer.lr: Input should be greater than 0"),
    ("trainer.batch_size=0", "trainer.batch_size: Input should be greater than 0"),
    ("trainer.device=gpu", "trainer.device: Value error, should be one of auto, cpu"),
])
def test_bad_overrides(override, fragment):
    with pytest.raises(ConfigError) as err:
        build_config(EBMConfig, overrides=[override])
    assert fragment in str(err.value)


@pytest.mark.parametrize("name,text,fragment", [
    ("empty.toml", "  \n", "is empty"),
    ("bad.toml", "[trainer\nepochs = 3", "is not valid TOML"),
    ("bad.json", "{trainer: 1}", "is not valid JSON"),
    ("bad.yaml", "trainer: [1, 2", "is not valid YAML"),
    ("list.json", "[1, 2]", "must hold a table/mapping"),
    ("c.ini", "[trainer]", "unknown extension"),
])
def test_bad_config_files(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_config(EBMConfig, path=path)
    assert fragment in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(EBMConfig, path=tmp_path / "nope.toml")


def test_override_cannot_descend_into_a_value():
    with pytest.raises(ConfigError, match="seed is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=1"])


def test_override_values_are_parsed_as_literals():
    assert parse_value("3") == 3 and parse_value("1e-4") == 1e-4 and parse_value("true") is True
    assert parse_value('["console"]') == ["console"] and parse_value("cpu") == "cpu" and parse_value("null") is None
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2", "d.e=x"]) == {"a": {"b": 1, "c": 2}, "d": {"e": "x"}}


def test_config_show_output_is_a_loadable_config(tmp_path):
    data = build_config(EBMConfig, overrides=["trainer.max_steps=7", "sampler.noise=0.01"]).model_dump(mode="json")
    path = tmp_path / "shown.toml"
    path.write_text(dumps(data))
    again = build_config(EBMConfig, path=path)
    assert again.model_dump(mode="json") == data
    assert json.loads(json.dumps(data))["trainer"]["max_steps"] == 7


def test_a_callback_settings_error_names_its_dotted_path_once():
    import genframe

    with pytest.raises(ConfigError) as err:  # a whole-table check: the table's path, the validator's own words
        genframe.recipe_config("ebm", overrides=["callbacks.divergence_guard.patience=25"])
    assert str(err.value) == ("invalid config: callbacks.divergence_guard: Value error, patience=25 has no effect "
                              "without a limit; set limit or drop patience")
    with pytest.raises(ConfigError, match=r"^invalid config: callbacks\.divergence_guard\.pateince: unknown key "
                                          r"\(did you mean callbacks\.divergence_guard\.patience\?\)$"):
        genframe.recipe_config("ebm", overrides=["callbacks.divergence_guard.pateince=25"])
    with pytest.raises(ConfigError, match=r"^invalid config: callbacks\.ema\.decay: Input should be less than 1, "
                                          r"got 2; callbacks\.ema\.x: unknown key"):
        genframe.recipe_config("ebm", overrides=['callbacks.use=["ema"]', "callbacks.ema.decay=2", "callbacks.ema.x=1"])
