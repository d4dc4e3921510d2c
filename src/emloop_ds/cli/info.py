"""Define ``emloop dataset info``: show every stream's sources."""

from __future__ import annotations

from pathlib import Path

import click

from emloop_ds.cli.options import config_argument, json_option, overrides_argument, verbose_option

__all__ = ["info"]


@click.command("info")
@config_argument
@overrides_argument
@click.option(
    "--batches",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many batches of each stream to inspect.",
)
@json_option
@verbose_option
def info(config: Path, overrides: tuple[str, ...], batches: int, as_json: bool) -> None:
    """Show each stream's sources with dtype, shape and value range; flag ragged sources.

    Example: emloop dataset info examples/iris/config.yaml --json
    """
    from emloop_ds.cli.render import dataset_info_json, print_json, render_dataset_info, warn_ragged
    from emloop_ds.core.config import load_config
    from emloop_ds.core.factory import create_dataset
    from emloop_ds.core.schema import inspect_dataset

    dataset_config = load_config(config, overrides)
    result = inspect_dataset(
        create_dataset(dataset_config), batches=batches, dataset_name=dataset_config.class_path
    )
    warn_ragged(result)
    if as_json:
        print_json(dataset_info_json(result))
    else:
        render_dataset_info(result)
