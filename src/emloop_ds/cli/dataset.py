"""Define the ``emloop dataset`` group: first-class commands plus any method of the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from emloop_ds.cli.download import download
from emloop_ds.cli.info import info
from emloop_ds.cli.options import config_argument, overrides_argument, verbose_option
from emloop_ds.cli.stream import stream

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
        return _method_command(cmd_name, method)


def _method_command(cmd_name: str, method: str) -> click.Command:
    @click.command(cmd_name, help=f"Call the dataset's method {method}() with no arguments.")
    @config_argument
    @overrides_argument
    @verbose_option
    def run_method(config: Path, overrides: tuple[str, ...]) -> None:
        from emloop_ds.core.config import load_config
        from emloop_ds.core.factory import call_method, create_dataset

        result: Any = call_method(create_dataset(load_config(config, overrides)), method)
        if result is not None:
            click.echo(result)

    return run_method


@click.group(cls=DatasetGroup)
def dataset() -> None:
    """Work with the dataset named by an emloop config.

    Besides the commands below, `emloop dataset METHOD CONFIG [KEY=VALUE]...` calls any public method
    of the dataset with no arguments.

    Example: emloop dataset info examples/iris/config.yaml dataset.batch_size=32
    """


dataset.add_command(info)
dataset.add_command(download)
dataset.add_command(stream)
