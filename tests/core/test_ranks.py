"""Test ranks_from_env: torchrun's RANK and WORLD_SIZE, read only when asked."""

from __future__ import annotations

import pytest

from emloop_ds import ConfigError, ranks_from_env


def test_unset_means_a_single_process():
    assert ranks_from_env({}) == (0, 1)


def test_torchrun_variables_are_read():
    assert ranks_from_env({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}) == (2, 4)


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert ranks_from_env() == (1, 3)


@pytest.mark.parametrize(
    ("environ", "phrase"),
    [
        ({"RANK": "0"}, "RANK is set but WORLD_SIZE is not"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set but RANK is not"),
        ({"RANK": "one", "WORLD_SIZE": "2"}, "RANK='one' is not a whole number"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "outside 0 <= RANK < WORLD_SIZE=2"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "outside 0 <= RANK"),
    ],
)
def test_malformed_variables_are_refused(environ, phrase):
    with pytest.raises(ConfigError, match=phrase):
        ranks_from_env(environ)
