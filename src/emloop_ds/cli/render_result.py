"""Render what a dataset method returned: YAML (or JSON) for data, a pointer for streams, text otherwise."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Set
from pathlib import Path
from typing import Any

from emloop_ds.cli.stderr import echo_stderr
from emloop_ds.core.config import describe_type

__all__ = ["UnprintableError", "render_method_result", "to_plain_data"]

_SCALARS = (str, int, float, bool, type(None))


def render_method_result(result: Any, call: str, config: Path, as_json: bool) -> None:
    """Print ``result`` of the method ``call`` (e.g. ``Data.summary()``) on stdout.

    Mappings and sequences are printed as YAML (JSON with ``as_json``), a string as it is, ``None`` not
    at all. A stream (an iterator, or an iterable without a length) is not consumed: a note on stderr
    points to ``emloop dataset stream``. Where stdout cannot encode Unicode, YAML and JSON escape it
    (exact and valid) and text degrades to ASCII look-alikes (NOTE [ASCII output], cli/stdout).
    """
    if _is_stream(result):
        _point_to_stream_command(result, call, config)
        return
    from emloop_ds.cli.stdout import ascii_safe_stdout

    stdout = ascii_safe_stdout()  # NOTE [ASCII output]
    encoding = (getattr(stdout, "encoding", None) or "utf-8").lower()
    if as_json or result is not None:
        text = _format(result, as_json, is_unicode=encoding.replace("_", "-").startswith("utf"), call=call)
        stdout.write(text)
        stdout.flush()


def _format(result: Any, as_json: bool, is_unicode: bool, call: str) -> str:
    """Format ``result`` as JSON, YAML or text.

    Raises:
        DatasetError: if the result cannot be printed (it contains itself, or YAML cannot write it).
    """
    from emloop_ds.core.errors import DatasetError, EmloopDsError

    try:
        plain = to_plain_data(result, json_safe=as_json)
        if as_json:
            return json.dumps(plain, indent=2, ensure_ascii=not is_unicode) + "\n"
        if isinstance(plain, dict | list):
            from emloop_ds.core.config import encode_yaml

            return encode_yaml(plain, sort_keys=False, allow_unicode=is_unicode)
        return f"{plain}\n"
    except (UnprintableError, EmloopDsError) as exc:
        raise DatasetError(
            f"{call} returned a result that cannot be printed: {exc}; return plain data "
            "(mappings, lists, numbers, strings)"
        ) from exc


class UnprintableError(Exception):
    """A result cannot be turned into plain data: it contains itself, or is nested too deeply."""


def to_plain_data(value: Any, json_safe: bool) -> Any:
    """Convert ``value`` into dicts, lists and scalars; arrays via ``tolist()``, other objects via ``str``.

    Subclasses of the scalar types (numpy's float64, an IntEnum) become the plain type, which YAML needs.
    With ``json_safe``, NaN and infinities become ``None`` (JSON has none) and keys become strings.

    Raises:
        UnprintableError: if ``value`` contains itself or is nested too deeply for Python's recursion.
    """
    try:
        return _plain(value, json_safe, on_path=set())
    except RecursionError as exc:
        raise UnprintableError("it is nested too deeply") from exc


def _plain(value: Any, json_safe: bool, on_path: set[int]) -> Any:
    if _has_tolist(value):  # numpy arrays and scalars; before the scalars, since np.float64 is a float
        value = value.tolist()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if json_safe and not math.isfinite(value) else float(value)
    if isinstance(value, str):
        return str(value)
    if not isinstance(value, Mapping | list | tuple | range | Set):
        return str(value)
    if id(value) in on_path:
        raise UnprintableError(f"it contains itself ({describe_type(value)} inside itself)")
    on_path.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {
                _plain_key(key, json_safe): _plain(item, json_safe, on_path) for key, item in value.items()
            }
        items = [_plain(item, json_safe, on_path) for item in value]
        if isinstance(value, Set):
            with contextlib.suppress(TypeError):  # unorderable members stay as they come
                items.sort()
        return items
    finally:
        on_path.discard(id(value))


def _plain_key(key: Any, json_safe: bool) -> Any:
    key = (
        _plain(key, json_safe=False, on_path=set()) if isinstance(key, _SCALARS) or _has_tolist(key) else key
    )
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
    echo_stderr(f"note: {call} returned a stream, which is not printed; {how}")
