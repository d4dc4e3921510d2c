"""Config loading: files and folders, the dataset section, YAML errors and overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from emloop_ds.core.config import DatasetConfig, apply_overrides, decode_yaml, load_config
from emloop_ds.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_reads_class_and_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n  batch_size: 4\n  names: [a, b]\n")
    config = load_config(path)
    assert config == DatasetConfig("mod.Data", {"batch_size": 4, "names": ["a", "b"]}, path)


def test_load_config_reads_config_yaml_of_a_folder(tmp_path: Path) -> None:
    write(tmp_path / "config.yaml", "dataset:\n  class: mod.Data\n")
    assert load_config(tmp_path).path == tmp_path / "config.yaml"


def test_folder_without_config_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds no config\.yaml"):
        load_config(tmp_path)


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n  sizes: [1, 2\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error in .*c\.yaml:4:1"):
        load_config(path)


def test_training_config_sections_other_than_dataset_are_ignored(tmp_path: Path) -> None:
    text = "dataset:\n  class: mod.Data\nmodel:\n  class: m.Net\nhooks:\n  - LogProfile\nmain_loop:\n  x: 1\n"
    assert load_config(write(tmp_path / "c.yaml", text)).kwargs == {}


def test_anchors_and_merge_keys_are_expanded(tmp_path: Path) -> None:
    text = (
        "common: &common\n  batch_size: 8\n  seed: 1\ndataset:\n  <<: *common\n  class: mod.Data\n  seed: 2\n"
    )
    assert load_config(write(tmp_path / "c.yaml", text)).kwargs == {"batch_size": 8, "seed": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no `dataset` section"),
        ("- a\n- b\n", "holds a list, not a mapping"),
        ("model: {}\n", "has no `dataset` section"),
        ("dataset: [1]\n", "`dataset` section of .* is a list"),
        ("dataset:\n  batch_size: 1\n", "has no `class`"),
        ("dataset:\n  class: NoDots\n", "is not a dotted path"),
        ("dataset:\n  class: 3\n", "is not a dotted path"),
        ("dataset:\n  class: a.B\n  output_dir: out\n", "output_dir .* is reserved"),
    ],
)
def test_unusable_dataset_section_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / "c.yaml", text))


def test_overrides_set_dotted_keys_with_yaml_values(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n  batch_size: 4\n")
    overrides = ["dataset.batch_size=32", "dataset.augment={rotate: true}", "dataset.name=train set"]
    config = load_config(path, overrides)
    assert config.kwargs == {"batch_size": 32, "augment": {"rotate": True}, "name": "train set"}


def test_override_can_replace_the_class(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n")
    assert load_config(path, ["dataset.class=other.Data"]).class_path == "other.Data"


def test_overrides_create_missing_sections() -> None:
    assert apply_overrides({}, ["dataset.sub.key=1"]) == {"dataset": {"sub": {"key": 1}}}


def test_overrides_leave_the_original_untouched() -> None:
    original = {"dataset": {"a": 1}}
    apply_overrides(original, ["dataset.a=2"])
    assert original == {"dataset": {"a": 1}}


@pytest.mark.parametrize("override", ["dataset.batch_size", "=3", "dataset..a=1", "dataset.=1"])
def test_malformed_override_is_a_config_error(override: str) -> None:
    with pytest.raises(ConfigError, match="write it as KEY=VALUE"):
        apply_overrides({}, [override])


def test_override_through_a_scalar_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.size is a int, not a mapping"):
        apply_overrides({"dataset": {"size": 3}}, ["dataset.size.x=1"])


def test_override_with_bad_yaml_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="YAML syntax error in override"):
        apply_overrides({}, ["dataset.a=[1, 2"])


def test_to_config_str_round_trips_arguments_and_output_dir() -> None:
    config = DatasetConfig("mod.Data", {"batch_size": 4, "nested": {"a": [1, 2]}})
    assert decode_yaml(config.to_config_str("out")) == {
        "batch_size": 4,
        "nested": {"a": [1, 2]},
        "output_dir": "out",
    }
    assert decode_yaml(config.to_config_str())["output_dir"] is None


def test_yaml_1_2_that_libyaml_rejects_is_still_read() -> None:
    # libyaml reads YAML 1.1, where a colon inside a plain flow scalar is an error (NOTE [libyaml]).
    assert decode_yaml("urls: [http://host/a.zip, {url: http://host/b.tar}]") == {
        "urls": ["http://host/a.zip", {"url": "http://host/b.tar"}]
    }


@pytest.mark.parametrize(
    "value",
    [
        "yes",
        "no",
        "12:30:00",
        "0o17",
        "010",
        "1e3",
        "a: b",
        "- x",
        "#c",
        "",
        " lead",
        "a\nb",
        "é€😀",
        "x" * 200,
    ],
)
def test_to_config_str_round_trips_awkward_strings(value: str) -> None:
    config = DatasetConfig("mod.Data", {"value": value, "values": [value, {value: value}]})
    decoded = decode_yaml(config.to_config_str())
    assert decoded["value"] == value
    assert decoded["values"] == [value, {value: value}]
