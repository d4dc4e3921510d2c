"""Render what a dataset method returned: YAML (or JSON) for data, a pointer for streams, text otherwise."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Set
from pathlib import Path
from typing import Any

import click

__all__ = ["render_method_result", "to_plain_data"]

_SCALARS = (str, int, float, bool, type(None))


def render_method_result(result: Any, call: str, config: Path, as_json: bool) -> None:
    """Print ``result`` of the method ``call`` (e.g. ``Data.summary()``) on stdout.

    Mappings and sequences are printed as YAML (JSON with ``as_json``), a string as it is, ``None`` not
    at all. A stream (an iterator, or an iterable without a length) is not consumed: a note on stderr
    points to ``emloop dataset stream``.
    """
    if _is_stream(result):
        _point_to_stream_command(result, call, config)
        return
    if as_json:
        click.echo(json.dumps(to_plain_data(result, json_safe=True), indent=2, ensure_ascii=False))
        return
    if result is None:
        return
    plain = to_plain_data(result, json_safe=False)
    if isinstance(plain, dict | list):
        from emloop_ds.core.config import encode_yaml

        click.echo(encode_yaml(plain, sort_keys=False), nl=False)
    else:
        click.echo(plain if isinstance(plain, str) else str(plain))


def to_plain_data(value: Any, json_safe: bool) -> Any:
    """Convert ``value`` into dicts, lists and scalars; arrays via ``tolist()``, other objects via ``str``.

    With ``json_safe``, NaN and infinities become ``None`` (JSON has none) and keys become strings.
    """
    if isinstance(value, float) and json_safe and not math.isfinite(value):
        return None
    if isinstance(value, _SCALARS):
        return value
    if _has_tolist(value):
        return to_plain_data(value.tolist(), json_safe)
    if isinstance(value, Mapping):
        return {_plain_key(key, json_safe): to_plain_data(item, json_safe) for key, item in value.items()}
    if isinstance(value, list | tuple | range):
        return [to_plain_data(item, json_safe) for item in value]
    if isinstance(value, Set):
        items = [to_plain_data(item, json_safe) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    return str(value)


def _plain_key(key: Any, json_safe: bool) -> Any:
    if _has_tolist(key):
        key = key.tolist()
    if isinstance(key, str) or (not json_safe and isinstance(key, _SCALARS)):
        return key
    return str(key)


def _has_tolist(value: Any) -> bool:
    # numpy arrays and scalars (and torch tensors) turn themselves into lists and Python numbers
    return callable(getattr(value, "tolist", None)) and not isinstance(value, type)


def _is_stream(value: Any) -> bool:
    if isinstance(value, Iterator):
        return True
    return (
        isinstance(value, Iterable)
        and not isinstance(value, str | bytes | Mapping | Set | list | tuple | range)
        and not hasattr(value, "__len__")
    )


def _point_to_stream_command(result: Any, call: str, config: Path) -> None:
    """Say that ``call`` returned a stream and how to read it, closing a generator unread."""
    close = getattr(result, "close", None)
    if callable(close):
        close()
    method = call.rpartition(".")[2].removesuffix("()")
    if method.endswith("_stream"):
        name = method.removesuffix("_stream")
        how = f"read it with `emloop dataset stream {config} --stream {name}`"
    else:
        how = (
            "to read it from the command line, name the method `<name>_stream` and run "
            f"`emloop dataset stream {config} --stream <name>`"
        )
    click.echo(f"note: {call} returned a stream, which is not printed; {how}", err=True)
