"""Load emloop YAML configs and apply ``KEY=VALUE`` overrides; the only module that parses YAML."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emloop_ds.core.errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "DatasetConfig",
    "apply_overrides",
    "decode_yaml",
    "describe_type",
    "encode_yaml",
    "load_config",
]

CONFIG_FILENAME = "config.yaml"
"""The file looked for when CONFIG names a folder."""

MAX_CONFIG_BYTES = 10 * 1024 * 1024
"""Configs are small; a larger file is refused (a 50 MB YAML took 18 s and 470 MB to parse)."""


@dataclass(frozen=True)
class DatasetConfig:
    """The ``dataset`` section of an emloop config, split into the class path and its arguments."""

    class_path: str
    kwargs: Mapping[str, Any]
    path: Path | None = None
    """The config file it came from; its folder is importable when the class is loaded."""
    overridden: Mapping[str, str] = field(default_factory=dict)
    """The ``KEY=VALUE`` override that set each key of ``kwargs`` (and ``class``), if one did."""

    def origin(self, key: str) -> str:
        """Name where ``key`` of the dataset section came from, for quoting in a message."""
        if key in self.overridden:
            return f"override {self.overridden[key]!r}"
        return "the config" if self.path is None else f"config {self.path}"

    def to_config_str(self, output_dir: str | None = None) -> str:
        """Encode the dataset's arguments plus ``output_dir`` as the YAML string a dataset is built from.

        NOTE [JSON config string]: the string is JSON (a subset of YAML) whenever JSON holds the data exactly,
        and ``decode_yaml`` reads JSON first: encoding and decoding a 10,000-entry download list then takes
        ~20 ms instead of ~1 s of YAML, so a config is parsed as YAML only once.
        """
        import json

        data = {**self.kwargs, "output_dir": output_dir}
        try:
            text = json.dumps(data, allow_nan=False, default=_not_json)
        except (TypeError, ValueError):  # dates, NaN...: YAML holds them
            return encode_yaml(data)
        return text if json.loads(text) == data else encode_yaml(data)  # e.g. int keys become str


def describe_type(value: Any) -> str:
    """Name the type of ``value`` with its article, for messages: ``an int``, ``a list``."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def decode_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML safely, expanding anchors and ``<<`` merge keys into plain dicts and lists.

    Raises:
        ConfigError: on a syntax error, naming ``source`` with the line and column.
    """
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if text.startswith("{"):  # NOTE [JSON config string]
        import json

        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML's flow mapping, not JSON
    try:
        return _load_yaml(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error in {where}: {problem}; fix the YAML at that place") from exc
    except YAMLError as exc:
        raise ConfigError(f"YAML error in {source}: {exc}; fix the YAML") from exc


def _not_json(value: Any) -> Any:
    raise ValueError(f"not JSON: {type(value).__name__}")


def encode_yaml(data: Any, sort_keys: bool = True, allow_unicode: bool = True) -> str:
    """Encode plain data (dicts, lists, scalars) as a block-style YAML string.

    Keys are sorted unless ``sort_keys`` is false; without ``allow_unicode``, non-ASCII characters are
    written as escapes in double-quoted strings.

    Raises:
        ConfigError: if ``data`` holds something YAML cannot write (an object of another type).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="safe")  # libyaml's emitter where installed: NOTE [libyaml]
    yaml.default_flow_style = False
    yaml.allow_unicode = allow_unicode
    yaml.representer.sort_base_mapping_type_on_output = sort_keys
    stream = io.StringIO()
    try:
        yaml.dump(data, stream)
    except YAMLError as exc:
        raise ConfigError(f"cannot write {describe_type(data)} as YAML: {exc}") from exc
    return stream.getvalue()


# NOTE [libyaml]: ruamel.yaml.clib (libyaml) parses and emits a config several times faster than ruamel's
# pure-Python code (a 20-file config: ~6 ms instead of ~30 ms for load, dump for the dataset, load again),
# which is a fifth of the start-up of `emloop dataset download`. libyaml's parser reads YAML 1.1 and rejects
# some YAML 1.2 that ruamel accepts (e.g. `[http://host/a]`: a colon in a plain flow scalar); the data it
# returns is built by ruamel's resolver and constructor either way. So a document libyaml rejects is parsed
# again by ruamel's own parser, which has the last word and words the error.


def _load_yaml(text: str) -> Any:
    """Parse YAML with libyaml when it is installed, falling back to ruamel's parser (NOTE [libyaml])."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe").load(text)  # libyaml if installed, else the same as below
    except YAMLError:
        return YAML(typ="safe", pure=True).load(text)


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> DatasetConfig:
    """Read the ``dataset`` section of an emloop config file (or of ``config.yaml`` in a folder).

    Other sections (``model``, ``hooks``, ``main_loop``, ``eval``...) are ignored. ``overrides`` are
    ``KEY=VALUE`` strings applied before the section is checked, e.g. ``dataset.batch_size=32``.

    Raises:
        ConfigError: if the file is missing, not a regular file, larger than ``MAX_CONFIG_BYTES`` or
            malformed, an override is unusable, or the ``dataset`` section is unusable.
    """
    path = _resolve_config_path(Path(path))
    config = decode_yaml(_read_config_text(path), source=str(path))
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(
            f"config {path} holds {describe_type(config)}, not a mapping; "
            "write it as `dataset:` with `class:` and the dataset's arguments beneath"
        )
    config = apply_overrides(config, overrides, source=f"config {path}")
    return _dataset_config(config, path, overrides)


def apply_overrides(
    config: Mapping[str, Any], overrides: Sequence[str], source: str = "the config"
) -> dict[str, Any]:
    """Return a copy of ``config`` with each ``dotted.key=yaml-value`` override set.

    The first part of a key must name a section of ``config`` (``source`` names it in messages); deeper
    keys that do not exist yet are created.

    Raises:
        ConfigError: if an override is not of the ``KEY=VALUE`` form, its first part names no section, or
            its key runs through a non-mapping.
    """
    result = _copy_mappings(config)
    for override in overrides:
        parts, value = _parse_override(override)
        if parts[0] not in result:
            import difflib

            sections = [str(section) for section in result]
            close = difflib.get_close_matches(parts[0], sections, n=1, cutoff=0.6)
            advice = f"did you mean `{close[0]}`?" if close else "check the first part of the key"
            raise ConfigError(
                f"override {override!r} names no section of {source}: `{parts[0]}` is not one of its "
                f"sections ({', '.join(sections) or 'none'}); {advice}"
            )
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:  # absent, or an empty section such as `dataset:` alone
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"cannot apply override {override!r}: {prefix} is {describe_type(child)}, "
                    "not a mapping; override that key itself"
                )
            node = child
        node[parts[-1]] = value
    return result


def _parse_override(override: str) -> tuple[list[str], Any]:
    override = _as_text(override)
    key, separator, raw_value = override.partition("=")
    parts = key.strip().split(".")
    if not separator or not all(parts):
        raise ConfigError(
            f"cannot read override {override!r}; write it as KEY=VALUE with a dotted key, "
            "e.g. dataset.batch_size=32"
        )
    return parts, decode_yaml(raw_value, source=f"override {override!r}")


def _as_text(argument: str) -> str:
    """Return a command-line argument as text, reading bytes that the locale could not decode as UTF-8.

    Under a C locale without UTF-8 mode, Python keeps undecodable bytes of ``sys.argv`` as surrogates,
    which no YAML parser accepts.
    """
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return os.fsencode(argument).decode("utf-8")
        except UnicodeError:
            raise ConfigError(
                f"cannot read override {argument!r}: it is neither text of this locale nor UTF-8; "
                "write it in UTF-8 or set a UTF-8 locale (e.g. LC_ALL=C.UTF-8)"
            ) from None
    return argument


def _copy_mappings(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _copy_mappings(value) if isinstance(value, Mapping) else value for key, value in data.items()
    }


def _resolve_config_path(path: Path) -> Path:
    if path.is_dir():
        candidate = path / CONFIG_FILENAME
        if not candidate.exists():
            raise ConfigError(f"folder {path} holds no {CONFIG_FILENAME}; pass the path of the config file")
        return candidate
    if not path.exists():
        raise ConfigError(
            f"config {path} does not exist; pass the path of an emloop YAML config "
            f"or of a folder holding {CONFIG_FILENAME}"
        )
    return path


_FILE_KINDS = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "FIFO",
    stat.S_IFSOCK: "socket",
    stat.S_IFDIR: "folder",
}


def _read_config_text(path: Path) -> str:
    """Read a config that is a regular file of at most ``MAX_CONFIG_BYTES``, refusing anything else.

    The kind is checked before opening, since opening a FIFO blocks and /dev/zero never ends.
    """
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode), "special file")
            raise ConfigError(
                f"config {path} is a {kind}, not a regular file; pass the path of an emloop YAML config"
            )
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config {path} is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MB, too large for a "
                "config; pass the emloop YAML config, not a data file"
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}; check the file and its permissions") from exc


def _override_origins(overrides: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """Return the override that last replaced the whole dataset section, and the one that set each key."""
    section: str | None = None
    keys: dict[str, str] = {}
    for override in overrides:
        parts = override.partition("=")[0].strip().split(".")
        if parts[0] != "dataset":
            continue
        if len(parts) == 1:
            section, keys = override, {}
        else:
            keys[parts[1]] = override
    return section, keys


def _dataset_config(config: Mapping[str, Any], path: Path, overrides: Sequence[str]) -> DatasetConfig:
    section_override, overridden = _override_origins(overrides)
    section_origin = f"config {path}" if section_override is None else f"override {section_override!r}"
    section = config.get("dataset")
    if section is None:
        raise ConfigError(f"{section_origin} has no `dataset` section; add `dataset:` with `class:` beneath")
    if not isinstance(section, dict):
        raise ConfigError(
            f"the `dataset` section of {section_origin} is {describe_type(section)}, not a mapping; "
            "put `class:` and the dataset's arguments beneath it"
        )
    if section_override is not None:
        overridden = {key: section_override for key in section} | overridden
    kwargs = dict(section)
    class_path = kwargs.pop("class", None)
    result = DatasetConfig(class_path=class_path, kwargs=kwargs, path=path, overridden=overridden)
    if class_path is None:
        where = result.origin("class") if "class" in overridden else section_origin
        raise ConfigError(
            f"the `dataset` section of {where} has no `class`; "
            "add `class: module.ClassName` naming the dataset class"
        )
    if not isinstance(class_path, str) or "." not in class_path.strip(".") or " " in class_path:
        raise ConfigError(
            f"dataset.class {class_path!r} in {result.origin('class')} is not a dotted path; "
            "write it as module.ClassName"
        )
    if "output_dir" in kwargs:
        raise ConfigError(
            f"dataset.output_dir in {result.origin('output_dir')} is reserved: emloop sets it; "
            "remove it from the `dataset` section"
        )
    return result
