"""The ``emloop`` command line."""
