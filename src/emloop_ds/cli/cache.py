"""Define ``emloop dataset cache``: build, check or clear the caches of a dataset's streams."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from emloop_ds.cli.options import (
    cache_dir_option,
    check_engine_options,
    config_argument,
    engine_options,
    json_option,
    overrides_argument,
    verbose_option,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from emloop_ds.core.cache.build import CacheCheck, CacheResult
    from emloop_ds.core.types import Batch

__all__ = ["cache"]


@click.command("cache")
@config_argument
@overrides_argument
@click.option(
    "--stream",
    "stream_names",
    multiple=True,
    metavar="NAME",
    help="A stream to cache; repeat it for several.  [default: train]",
)
@engine_options
@click.option("--force", is_flag=True, help="Rebuild caches that are complete already.")
@click.option(
    "--check", is_flag=True, help="Verify the caches (sizes and sha256) without building; exit 1 if damaged."
)
@click.option("--clear", is_flag=True, help="Remove every cache of this dataset (all its streams).")
@cache_dir_option
@json_option
@verbose_option
def cache(
    config: Path,
    overrides: tuple[str, ...],
    stream_names: tuple[str, ...],
    workers: int,
    engine: Literal["processes", "dask"],
    scheduler: str | None,
    scheduler_timeout_s: float | None,
    force: bool,
    check: bool,
    clear: bool,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Compute streams once into their caches, which later reads replay at memory speed.

    A cache is found by the fingerprint of the dataset's class, its config's dataset section, the stream
    and the dataset's module source: an override or an edit builds another one. `emloop dataset stream
    CONFIG --cache` and StreamWrapper(..., cache=True) read it.

    Example: emloop dataset cache examples/iris/config.yaml --stream train --workers 2
    """
    from emloop_ds.core.config import load_config
    from emloop_ds.core.factory import create_dataset
    from emloop_ds.core.throughput import find_stream

    if check + clear + force > 1:
        raise click.UsageError("--check, --clear and --force are exclusive: give one of them")
    check_engine_options(engine, workers, scheduler, scheduler_timeout_s)
    root = use_cache_dir(cache_dir)
    dataset = create_dataset(load_config(config, overrides))
    names = stream_names or ("train",)
    for name in names:
        find_stream(dataset, name)  # an unknown stream fails before any work
    if clear:
        _clear(dataset, root, as_json)
    elif check:
        _check(dataset, names, root, as_json)
    else:
        engine_kwargs: dict[str, Any] = {"workers": workers, "engine": engine}
        if engine == "dask":
            engine_kwargs.update(scheduler=scheduler, scheduler_timeout_s=scheduler_timeout_s or 10.0)
        results = [_build(dataset, name, root, force, engine_kwargs) for name in names]
        if as_json:
            from emloop_ds.cli.render import print_json

            print_json([_result_json(name, result) for name, result in zip(names, results, strict=True)])
        else:
            _render_results(names, results)


def use_cache_dir(cache_dir: Path | None) -> Path | None:
    """Return ``--cache-dir`` as the cache root, made the root of worker processes too (None: default).

    Worker processes and ``self.cached`` find the root through ``$EMLOOP_DS_CACHE``, so it is set here.
    """
    if cache_dir is None:
        return None
    root = cache_dir.expanduser().resolve()
    os.environ["EMLOOP_DS_CACHE"] = str(root)
    return root


def _build(
    dataset: Any, name: str, root: Path | None, force: bool, engine_kwargs: dict[str, Any]
) -> CacheResult:
    """Build one stream's cache (unless complete), with a progress bar of batches and bytes on a terminal."""
    from emloop_ds.cli.stream_progress import open_batch_progress
    from emloop_ds.core.cache.build import ensure_cache
    from emloop_ds.core.cache.fingerprint import stream_cache_path
    from emloop_ds.core.cache.reader import is_sealed, read_info
    from emloop_ds.core.cache.stream import stream_fingerprint
    from emloop_ds.core.throughput import find_stream

    path = stream_cache_path(dataset, name, root)
    known_batches = read_info(path).batches if is_sealed(path) else None  # an ETA for a rebuild
    stream_fn = find_stream(dataset, name)
    with open_batch_progress(name, known_batches) as progress:
        written = 0

        def on_batch(writer: Any) -> None:
            nonlocal written
            progress.advance(writer.bytes_written - written)
            written = writer.bytes_written

        return ensure_cache(
            path,
            stream_fingerprint(dataset, name),
            f"stream `{name}` of {type(dataset).__name__}",
            lambda: _read_pass(stream_fn, name, engine_kwargs),
            force=force,
            on_batch=on_batch,
        )


def _read_pass(stream_fn: Callable[..., Any], name: str, engine_kwargs: dict[str, Any]) -> Iterator[Batch]:
    """Yield one pass of the stream, in stream order, in this process or on ``--workers``."""
    from emloop_ds.core.errors import EmloopDsError, StreamError, describe_exception
    from emloop_ds.core.stream.wrapper import StreamWrapper

    wrapper = StreamWrapper(stream_fn, name, **engine_kwargs)
    count = 0
    try:
        with wrapper:
            for batch in wrapper:
                count += 1
                yield batch
    except EmloopDsError:
        raise
    except Exception as exc:
        raise StreamError(
            f"stream `{name}` failed after {count} batches: {describe_exception(exc)} "
            "(--verbose shows the traceback)"
        ) from exc
    finally:
        wrapper.close()


def _result_json(name: str, result: CacheResult) -> dict[str, Any]:
    info = result.info
    return {
        "stream": name,
        "status": result.status,
        "examples": info.examples,
        "batches": info.batches,
        "bytes": info.bytes,
        "seconds": round(result.seconds, 3),
        "path": str(info.path),
        "fingerprint": info.fingerprint,
    }


def _render_results(names: tuple[str, ...], results: list[CacheResult]) -> None:
    from rich.table import Table
    from rich.text import Text

    from emloop_ds.cli.console import stdout_console
    from emloop_ds.core.download.progress import format_bytes

    table = Table()
    for column, justify in (
        ("stream", "left"),
        ("examples", "right"),
        ("batches", "right"),
        ("bytes", "right"),
        ("seconds", "right"),
        ("status", "left"),
        ("path", "left"),
    ):
        table.add_column(
            column,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=column != "path",
            overflow="fold" if column == "path" else "ellipsis",
        )
    for name, result in zip(names, results, strict=True):
        info = result.info
        table.add_row(
            Text(name),
            Text(f"{info.examples:,}"),
            Text(f"{info.batches:,}"),
            Text(format_bytes(info.bytes)),
            Text(f"{result.seconds:.2f}"),
            Text.assemble((result.status, "green")),
            Text(str(info.path)),
        )
    stdout_console(emoji=False, highlight=False).print(table)


def _check(dataset: Any, names: tuple[str, ...], root: Path | None, as_json: bool) -> None:
    """Verify each stream's cache; exit 1 if any is damaged."""
    from emloop_ds.core.cache.build import check_stream_cache

    checks = [check_stream_cache(dataset, name, root) for name in names]
    if as_json:
        from emloop_ds.cli.render import print_json

        print_json([_check_json(check) for check in checks])
    else:
        for check in checks:
            click.echo(f"{check.stream}: {check.status} ({check.path})")
            for problem in check.problems:
                click.echo(f"  {problem}")
    damaged = [check.stream for check in checks if check.status == "damaged"]
    if damaged:
        click.echo(
            f"error: the cache of {', '.join(f'`{name}`' for name in damaged)} is damaged; rebuild it with "
            "`emloop dataset cache CONFIG --force`",
            err=True,
        )
        sys.exit(1)


def _check_json(check: CacheCheck) -> dict[str, Any]:
    return {
        "stream": check.stream,
        "status": check.status,
        "path": str(check.path),
        "problems": list(check.problems),
        "fingerprint": check.info.fingerprint if check.info is not None else None,
    }


def _clear(dataset: Any, root: Path | None, as_json: bool) -> None:
    from emloop_ds.core.cache.build import clear_dataset_caches

    removed = clear_dataset_caches(dataset, root)
    if as_json:
        from emloop_ds.cli.render import print_json

        print_json({"removed": None if removed is None else str(removed)})
    elif removed is None:
        click.echo("no caches of this dataset to remove")
    else:
        click.echo(f"removed the caches in {removed}")
