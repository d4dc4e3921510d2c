"""Define the ``emloop`` root group: the one place that turns errors into a message and an exit code."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any, NoReturn

import click

from emloop_ds.cli.dataset import dataset
from emloop_ds.cli.options import VERBOSE_KEY, verbose_option
from emloop_ds.cli.stderr import echo_stderr
from emloop_ds.core.errors import EmloopDsError, TerminatedError

__all__ = ["LIBRARY_LOGGERS", "cli", "main"]

EXIT_INTERRUPTED = 130

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"
LIBRARY_LOGGERS = (
    *("absl", "asyncio", "bokeh", "botocore", "charset_normalizer", "distributed", "filelock", "fsspec"),
    *("h5py", "httpcore", "httpx", "matplotlib", "numexpr", "PIL", "s3fs", "tornado", "urllib3"),
)
"""Loggers of libraries that datasets and downloads use: they stay at WARNING, their INFO is noise here."""


class EmloopGroup(click.Group):
    """A group that reports errors, Click's usage errors and Ctrl-C as one line with the right exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the root group's own options, reporting a usage error in our form."""
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            _exit_for_click_error(ctx, exc)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Find the subcommand, suggesting the closest names for an unknown one (as newer Click does)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.6)
            hint = "did you mean " + " or ".join(f"`{match}`" for match in close) + "? " if close else ""
            ctx.fail(f"no command `{name}`; {hint}commands: {', '.join(self.list_commands(ctx))}")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, converting our errors, Click's and ``KeyboardInterrupt`` into exits."""
        try:
            return super().invoke(ctx)
        except EmloopDsError as exc:
            _report(ctx, exc, f"error: {exc}")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _exit_for_click_error(ctx, exc)
        except TerminatedError as exc:  # SIGTERM, where a command turns it into this KeyboardInterrupt
            _report(ctx, exc, "terminated")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            _report(ctx, exc, "interrupted")
            sys.exit(EXIT_INTERRUPTED)


def _report(ctx: click.Context, exc: BaseException, message: str) -> None:
    if ctx.meta.get(VERBOSE_KEY):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    echo_stderr(message)


def _exit_for_click_error(ctx: click.Context, exc: click.ClickException) -> NoReturn:
    """Print Click's error as our ``error:`` line (plus the usage of a usage error) and exit with its code.

    ``emloop`` and ``emloop dataset`` alone print their help, as Click does (NoArgsIsHelpError).
    """
    if type(exc).__name__ == "NoArgsIsHelpError":
        raise exc
    echo_stderr("error: " + "; ".join(exc.format_message().splitlines()))
    if isinstance(exc, click.UsageError):
        failed = exc.ctx or ctx
        usage = " ".join([failed.command_path, *failed.command.collect_usage_pieces(failed)])
        echo_stderr(f"usage: {usage}  (see '{failed.command_path} --help')")
    sys.exit(exc.exit_code)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to the ``sys.stderr`` of the moment, so that Click's test runner captures the records."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _configure_logging(ctx: click.Context, quiet: bool) -> None:
    """Log to stderr at INFO (WARNING with ``--quiet``) as emloop's entry point does, until the command ends.

    The root logger gets the handler, so a dataset's own loggers are shown too; the loggers of
    ``LIBRARY_LOGGERS`` stay at WARNING. Everything is put back when the command ends.
    """
    root = logging.getLogger()
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt=LOG_DATE_FORMAT))
    loggers = [root, *(logging.getLogger(name) for name in LIBRARY_LOGGERS)]
    levels = [logger.level for logger in loggers]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    for logger in loggers[1:]:
        logger.setLevel(max(logger.level, logging.WARNING))
    root.addHandler(handler)

    def restore() -> None:
        root.removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

    ctx.call_on_close(restore)


@click.group(cls=EmloopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="Log only warnings and errors, not the INFO messages.")
@verbose_option
@click.version_option(package_name="emloop-ds", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """Configure, inspect, stream and download machine-learning datasets.

    Example: emloop dataset info examples/iris/config.yaml
    """
    _configure_logging(ctx, quiet)


cli.add_command(dataset)


def main() -> None:
    """Run the ``emloop`` command line."""
    try:
        cli(prog_name="emloop")
    finally:
        # Shutdown runs the garbage collector over every object of every module imported (click, rich,
        # http.client...): exiting after a download took ~30 ms, ~9 ms with them frozen. Nothing left needs
        # the collector (files and locks are closed by ``with``), so let shutdown skip them.
        gc.freeze()
