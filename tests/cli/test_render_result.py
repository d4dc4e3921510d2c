"""Turning what a dataset method returns into plain data for YAML and JSON."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict

import numpy as np
import pytest

from emloop_ds.cli.render_result import _is_stream, to_plain_data


def test_numpy_values_become_python_numbers_and_lists() -> None:
    value = {"array": np.arange(3, dtype=np.int16), "scalar": np.float32(0.5), "flag": np.bool_(True)}
    plain = to_plain_data(value, json_safe=False)
    assert plain == {"array": [0, 1, 2], "scalar": 0.5, "flag": True}
    assert [type(item) for item in plain["array"]] == [int, int, int]
    assert type(plain["flag"]) is bool


def test_containers_keep_their_order_and_sets_are_sorted() -> None:
    value = OrderedDict([("z", (1, 2)), ("a", {3, 1, 2}), ("r", range(2)), ("c", Counter("aab"))])
    assert to_plain_data(value, json_safe=False) == {
        "z": [1, 2],
        "a": [1, 2, 3],
        "r": [0, 1],
        "c": {"a": 2, "b": 1},
    }
    assert list(to_plain_data(value, json_safe=False)) == ["z", "a", "r", "c"]
    assert to_plain_data({1, "a"}, json_safe=False) in ([1, "a"], ["a", 1])  # unsortable: as it comes


def test_json_safe_data_has_no_nan_and_only_string_keys() -> None:
    value = {1: float("nan"), (2, 3): [math.inf, -math.inf, 1.5], np.int64(4): "x"}
    assert to_plain_data(value, json_safe=True) == {"1": None, "(2, 3)": [None, None, 1.5], "4": "x"}
    yaml_plain = to_plain_data(value, json_safe=False)
    assert list(yaml_plain) == [1, "(2, 3)", 4]
    assert math.isnan(yaml_plain[1])


def test_other_objects_become_their_text() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    assert to_plain_data({"thing": Thing(), "bytes": b"\x00"}, json_safe=True) == {
        "thing": "a thing",
        "bytes": "b'\\x00'",
    }


@pytest.mark.parametrize(
    ("value", "is_stream"),
    [
        ((x for x in [1]), True),
        (iter([1]), True),
        (map(str, [1]), True),
        ([1], False),
        ({"a": 1}, False),
        ("text", False),
        (np.arange(3), False),
        (range(3), False),
    ],
)
def test_streams_are_iterators_or_iterables_without_a_length(value: object, is_stream: bool) -> None:
    assert _is_stream(value) is is_stream
