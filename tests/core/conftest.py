"""Fixtures for the stream tests: worker-process engines that are always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emloop_ds.core.stream.engine import StreamSpec
from emloop_ds.core.stream.processes import ProcessEngine

StartEngine = Callable[..., ProcessEngine]


@pytest.fixture
def start_engine(workers_import_tests: None) -> Iterator[StartEngine]:
    """Return a function starting a ProcessEngine over a stream function; every engine is closed after."""
    engines: list[ProcessEngine] = []

    def start(function: Callable[..., Any], count: int = 1) -> ProcessEngine:
        engine = ProcessEngine(StreamSpec("test stream", function=function), count)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()
