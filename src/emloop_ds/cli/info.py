"""Define ``emloop dataset info``: show every stream's sources, and exit 1 if a stream is broken."""

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
@click.option(
    "--stats",
    is_flag=True,
    help="Also show mean, std and an 8-bin histogram of numbers and the counts of up to 20 distinct "
    "values (reads each stream twice).",
)
@click.option(
    "--allow-broken",
    is_flag=True,
    help="Exit 0 even if a stream is broken (for half-built datasets); the report still shows it.",
)
@json_option
@verbose_option
def info(
    config: Path, overrides: tuple[str, ...], batches: int, stats: bool, allow_broken: bool, as_json: bool
) -> None:
    """Show each stream's sources with dtype, shape, range, NaN and infinities; flag ragged sources.

    Example: emloop dataset info examples/iris/config.yaml --batches 8 --stats
    """
    from emloop_ds.cli.render import dataset_info_json, print_json, render_dataset_info, warn_of_findings
    from emloop_ds.core.config import load_config
    from emloop_ds.core.errors import StreamError
    from emloop_ds.core.factory import create_dataset
    from emloop_ds.core.schema import inspect_dataset

    dataset_config = load_config(config, overrides)
    result = inspect_dataset(
        create_dataset(dataset_config), batches=batches, dataset_name=dataset_config.class_path, stats=stats
    )
    warn_of_findings(result)
    if as_json:
        print_json(dataset_info_json(result))
    else:
        render_dataset_info(result)
    broken = result.broken_streams
    if broken and not allow_broken:
        names = ", ".join(f"`{stream.name}`" for stream in broken)
        raise StreamError(
            f"{len(broken)} of {len(result.streams)} streams broken: {names} (see the report above); "
            "fix them, or pass --allow-broken to inspect a half-built dataset with exit code 0"
        )
