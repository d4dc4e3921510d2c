"""Config loading: files and folders, the dataset section, YAML errors and overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emloop_ds.core import config as config_module
from emloop_ds.core.config import DatasetConfig, apply_overrides, decode_yaml, describe_type, load_config
from emloop_ds.core.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_config_reads_class_and_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n  batch_size: 4\n  names: [a, b]\n")
    config = load_config(path)
    assert config == DatasetConfig("mod.Data", {"batch_size": 4, "names": ["a", "b"]}, path)


def test_load_config_accepts_a_str_path(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n")
    assert load_config(str(path)) == load_config(path)
    assert load_config(str(tmp_path / "c.yaml"), ["dataset.a=1"]).kwargs == {"a": 1}


def test_a_character_device_is_refused_without_reading_it() -> None:
    with pytest.raises(ConfigError, match=r"config /dev/zero is a character device, not a regular file"):
        load_config("/dev/zero")


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.yaml")  # opening it would block: nobody writes to it
    with pytest.raises(ConfigError, match=r"config\.yaml is a FIFO, not a regular file"):
        load_config(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match=r"is a FIFO"):
        load_config(tmp_path)


def test_a_config_larger_than_10_mb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as file:
        file.truncate(config_module.MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError, match=r"big\.yaml is larger than 10 MB, too large for a config"):
        load_config(path)


def test_the_size_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "dataset:\n  class: mod.Data\n"
    monkeypatch.setattr(config_module, "MAX_CONFIG_BYTES", len(text))
    assert load_config(write(tmp_path / "c.yaml", text)).class_path == "mod.Data"
    with pytest.raises(ConfigError, match="too large"):
        load_config(write(tmp_path / "c.yaml", text + "#"))


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


def test_overrides_create_missing_keys_below_a_section() -> None:
    assert apply_overrides({"dataset": None}, ["dataset.sub.key=1"]) == {"dataset": {"sub": {"key": 1}}}


@pytest.mark.parametrize("override", ["datset.x=1", "datset=1"])
def test_override_naming_no_section_lists_the_sections(tmp_path: Path, override: str) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\nmodel:\n  x: 1\n")
    with pytest.raises(
        ConfigError,
        match=rf"override '{override}' names no section of config .*c\.yaml: "
        r"`datset` is not one of its sections \(dataset, model\)",
    ):
        load_config(path, [override])


def test_override_naming_nothing_close_asks_to_check_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"`zzz` is not one of its sections \(dataset\); check the first part"
    ):
        apply_overrides({"dataset": {}}, ["zzz.a=1"])


def test_override_of_an_empty_config_says_it_has_no_sections() -> None:
    with pytest.raises(ConfigError, match=r"sections \(none\)"):
        apply_overrides({}, ["dataset.class=a.B"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.class=NoDots", r"dataset\.class 'NoDots' in override 'dataset\.class=NoDots' is not"),
        ("dataset.output_dir=out", r"dataset\.output_dir in override 'dataset\.output_dir=out' is reserved"),
        ("dataset=[1]", r"`dataset` section of override 'dataset=\[1\]' is a list"),
        ("dataset={size: 1}", r"`dataset` section of override 'dataset=\{size: 1\}' has no `class`"),
        ("dataset.class=null", r"`dataset` section of override 'dataset\.class=null' has no `class`"),
    ],
)
def test_errors_caused_by_an_override_name_the_override(tmp_path: Path, override: str, message: str) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n")
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path, ["dataset.size=2", override])
    assert "c.yaml" not in str(error.value)


def test_config_errors_without_overrides_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: NoDots\n")
    with pytest.raises(ConfigError, match=r"'NoDots' in config .*c\.yaml is not a dotted path"):
        load_config(path, ["dataset.size=2"])


def test_origin_names_the_last_override_of_a_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dataset:\n  class: mod.Data\n  a: 1\n")
    config = load_config(path, ["dataset.a={b: 2}", "dataset.a.b=3", "dataset.c=4"])
    assert config.origin("a") == "override 'dataset.a.b=3'"
    assert config.origin("class") == f"config {path}"
    replaced = load_config(path, ["dataset.c=4", "dataset={class: x.Y, d: 1}"])
    assert replaced.origin("c") == f"config {path}"
    assert replaced.origin("d") == replaced.origin("class") == "override 'dataset={class: x.Y, d: 1}'"


def test_overrides_leave_the_original_untouched() -> None:
    original = {"dataset": {"a": 1}}
    apply_overrides(original, ["dataset.a=2"])
    assert original == {"dataset": {"a": 1}}


@pytest.mark.parametrize("override", ["dataset.batch_size", "=3", "dataset..a=1", "dataset.=1"])
def test_malformed_override_is_a_config_error(override: str) -> None:
    with pytest.raises(ConfigError, match="write it as KEY=VALUE"):
        apply_overrides({}, [override])


def test_override_through_a_scalar_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.size is an int, not a mapping"):
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


@pytest.mark.parametrize(
    ("value", "phrase"), [(3, "an int"), ([1], "a list"), (None, "a NoneType"), ("x", "a str")]
)
def test_describe_type_uses_the_right_article(value: object, phrase: str) -> None:
    assert describe_type(value) == phrase


def test_a_config_holding_an_int_says_an_int(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds an int, not a mapping"):
        load_config(write(tmp_path / "c.yaml", "3\n"))


def test_an_override_the_locale_could_not_decode_is_read_as_utf8(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("dataset:\n  class: m.C\n", encoding="utf-8")
    undecoded = "dataset.label=é".encode().decode("ascii", "surrogateescape")  # sys.argv under LC_ALL=C
    assert load_config(config, [undecoded]).kwargs["label"] == "é"


def test_an_override_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("dataset:\n  class: m.C\n", encoding="utf-8")
    undecoded = b"dataset.label=\xff".decode("ascii", "surrogateescape")
    with pytest.raises(ConfigError, match="neither text of this locale nor UTF-8"):
        load_config(config, [undecoded])
