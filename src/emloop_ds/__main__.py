"""Run the ``emloop`` command line as ``python -m emloop_ds``."""

from emloop_ds.cli.main import main

main()
