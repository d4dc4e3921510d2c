"""Define the ``emloop dataset`` group: first-class commands plus any method of the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from emloop_ds.cli.cache import cache
from emloop_ds.cli.download import download
from emloop_ds.cli.info import info
from emloop_ds.cli.options import config_argument, json_option, overrides_argument, verbose_option
from emloop_ds.cli.stream import stream

if TYPE_CHECKING:
    from collections.abc import Iterable

    from emloop_ds.core.class_source import ClassNames
    from emloop_ds.core.config import DatasetConfig
    from emloop_ds.core.errors import EmloopDsError

__all__ = ["dataset"]


class DatasetGroup(click.Group):
    """A group whose unknown subcommands call the dataset method of that name."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return a registered command, or one that calls the dataset method ``cmd_name``."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        method = cmd_name.replace("-", "_")
        if not method.isidentifier() or method.startswith("_"):
            return None
        return _method_command(cmd_name, method, builtins=sorted(self.commands))


def _method_command(cmd_name: str, method: str, builtins: list[str]) -> click.Command:
    @click.command(
        cmd_name,
        help=f"Call the dataset's method {method}() with no arguments and print what it returns.\n\n"
        f"Example: emloop dataset {cmd_name} examples/iris/config.yaml --json",
    )
    @config_argument
    @overrides_argument
    @json_option
    @verbose_option
    def run_method(config: Path, overrides: tuple[str, ...], as_json: bool) -> None:
        from emloop_ds.cli.render_result import render_method_result
        from emloop_ds.core.factory import call_method, create_dataset, find_method, public_methods

        dataset_config = _load_config(config, overrides, cmd_name, builtins)
        class_path = dataset_config.class_path
        if _close_names(cmd_name, builtins):  # NOTE [mistyped commands]
            names = _read_class_names(dataset_config)
            if names is not None and method not in names:
                raise _unknown_name_error(cmd_name, class_path, builtins, names.functions)
        dataset = create_dataset(dataset_config)
        if find_method(dataset, method) is None:
            raise _unknown_name_error(cmd_name, class_path, builtins, public_methods(dataset))
        result: Any = call_method(dataset, method)
        render_method_result(result, f"{type(dataset).__name__}.{method}()", config, as_json)

    return run_method


def _load_config(
    config: Path, overrides: tuple[str, ...], cmd_name: str, builtins: list[str]
) -> DatasetConfig:
    """Load the config; if it fails and ``cmd_name`` looks like a mistyped command, say that first."""
    from emloop_ds.core.config import load_config
    from emloop_ds.core.errors import ConfigError

    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        close = _close_names(cmd_name, builtins)
        if close:
            raise ConfigError(f"no command `{cmd_name}`; did you mean {_quote(close)}? (and {exc})") from exc
        raise


# NOTE [mistyped commands]: a name close to a built-in command (`inof`, `stram`) is most likely a typo of
# it, so it is refused before the dataset is built (building may be slow, or download) if the source of the
# dataset class shows no such name (core.class_source, which also sees `self.x = ...` in its methods). Any
# other name is looked up on the built dataset as emloop does, `getattr(dataset, name)`, since a dataset
# may bind callables in ways no reading of its source can see.


def _read_class_names(dataset_config: DatasetConfig) -> ClassNames | None:
    """Read the names of the dataset class from its source: NOTE [mistyped commands]."""
    from emloop_ds.core.class_source import read_class_names

    folders = [Path.cwd()] if dataset_config.path is None else [dataset_config.path.parent, Path.cwd()]
    return read_class_names(dataset_config.class_path, folders)


def _unknown_name_error(
    cmd_name: str, class_path: str, builtins: list[str], methods: Iterable[str]
) -> EmloopDsError:
    from emloop_ds.core.errors import ConfigError

    dashed = sorted(name.replace("_", "-") for name in methods)
    close = _close_names(cmd_name, builtins + dashed)
    hint = f"did you mean {_quote(close)}? " if close else ""
    return ConfigError(
        f"`{cmd_name}` is neither a command nor a method of {class_path}; {hint}"
        f"commands: {', '.join(builtins)}; methods: {_listing(dashed)}"
    )


def _listing(names: list[str], limit: int = 30) -> str:
    """Join names for a message; a class with hundreds of methods gets the first ``limit`` and a count."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _close_names(name: str, candidates: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name.replace("_", "-"), candidates, n=3, cutoff=0.6)


def _quote(names: list[str]) -> str:
    return " or ".join(f"`{name}`" for name in names)


@click.group(cls=DatasetGroup)
def dataset() -> None:
    """Work with the dataset named by an emloop config.

    Any public method of the dataset that takes no arguments is a command too: `emloop dataset METHOD
    CONFIG [KEY=VALUE]...` calls it and prints its result (YAML, or JSON with --json). A name that is
    neither lists the dataset's methods, e.g. `emloop dataset methods CONFIG`.

    Example: emloop dataset info examples/iris/config.yaml dataset.batch_size=32
    """


# One line each in `emloop dataset --help`; Click would cut each command's first sentence at the width.
_PURPOSES = {
    info: "Show each stream's sources: dtype, shape, range, NaN.",
    download: "Download and extract the dataset's files.",
    stream: "Read a stream and measure how fast batches come.",
    cache: "Compute streams once into caches that later reads replay.",
}
for _command, _purpose in _PURPOSES.items():
    _command.short_help = _purpose
    dataset.add_command(_command)
