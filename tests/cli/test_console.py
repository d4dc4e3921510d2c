"""The stdout console: ASCII look-alikes where stdout cannot encode Unicode, untouched output where it can."""

from __future__ import annotations

import io

import pytest
from rich.table import Table

from emloop_ds.cli.console import stdout_console


def print_table(monkeypatch: pytest.MonkeyPatch, encoding: str, errors: str = "strict") -> bytes:
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)
    monkeypatch.setattr("sys.stdout", stdout)
    table = Table("source", "range", "histogram")
    table.add_row("température", "0.1 – 7.9", " ▁▂▃▄▅▆▇█")
    stdout_console(width=60).print(table)
    return raw.getvalue()


def test_an_ascii_stdout_gets_lookalikes_and_one_question_mark_per_cell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = print_table(monkeypatch, "ascii").decode("ascii")
    assert "temp?rature" in text
    assert "0.1 - 7.9" in text
    assert " .:-=+*%#" in text
    assert "+---" in text  # rich's ASCII box


@pytest.mark.parametrize("errors", ["surrogateescape", "replace", "backslashreplace"])
def test_an_ascii_stdout_gets_lookalikes_whatever_its_error_handler(
    monkeypatch: pytest.MonkeyPatch, errors: str
) -> None:
    # A C locale without UTF-8 mode gives stdout "surrogateescape", which fails on "–" as "strict" does.
    text = print_table(monkeypatch, "ascii", errors).decode("ascii")
    assert "temp?rature" in text
    assert "0.1 - 7.9" in text
    assert " .:-=+*%#" in text


def test_a_latin1_stdout_keeps_what_it_can_encode(monkeypatch: pytest.MonkeyPatch) -> None:
    text = print_table(monkeypatch, "latin-1").decode("latin-1")
    assert "température" in text
    assert "0.1 - 7.9" in text


def test_a_utf8_stdout_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    text = print_table(monkeypatch, "utf-8").decode("utf-8")
    assert "température" in text
    assert "0.1 – 7.9" in text
    assert "▁▂▃▄▅▆▇█" in text
    assert "┏" in text


def test_wide_characters_keep_the_columns_aligned(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(raw, encoding="ascii", write_through=True))
    table = Table("source", "dtype")
    table.add_row("画像", "uint8")
    table.add_row("x", "int64")
    stdout_console(width=40).print(table)
    lines = raw.getvalue().decode("ascii").splitlines()
    assert "????" in lines[3]
    assert len({len(line) for line in lines}) == 1
