"""Test ``emloop dataset cache`` and ``emloop dataset stream --cache`` through Click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emloop_ds.cli.main import cli
from tests.core.cache.cache_datasets import calls


@pytest.fixture(autouse=True)
def _restore_cache_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put $EMLOOP_DS_CACHE back after each test: --cache-dir sets it in the process running the command."""
    monkeypatch.delenv("EMLOOP_DS_CACHE", raising=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Write a config of the cache tests' dataset, logging its passes into ``tmp_path``."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "dataset:\n"
        "  class: tests.core.cache.cache_datasets.MixedDataset\n"
        f"  log_dir: {json.dumps(str(tmp_path))}\n",
        encoding="utf-8",
    )
    return path


def run(*args: str | Path, cache_dir: Path) -> Result:
    return CliRunner().invoke(cli, ["dataset", *map(str, args), "--cache-dir", str(cache_dir)])


def test_stream_through_the_cache_writes_then_reads(config, tmp_path):
    first = run("stream", config, "--stream", "decoded", "--cache", "--json", cache_dir=tmp_path / "c")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["cache"] == "write"
    second = run(
        "stream", config, "--stream", "decoded", "--cache", "--shuffle", "--seed", "3", "--epochs", "2",
        "--json", cache_dir=tmp_path / "c",
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert (summary["cache"], summary["batches"], summary["examples"]) == ("read", 14, 54)
    assert len(calls(tmp_path)) == 1
    plain = CliRunner().invoke(cli, ["dataset", "stream", str(config), "--stream", "decoded", "--json"])
    assert json.loads(plain.stdout)["cache"] is None


def test_stream_refuses_cache_options_without_cache(config, tmp_path):
    result = CliRunner().invoke(cli, ["dataset", "stream", str(config), "--shuffle"])
    assert result.exit_code == 2
    assert "add --cache" in result.output


def test_cache_builds_then_finds_it_complete_and_force_rebuilds(config, tmp_path):
    built = run("cache", config, "--stream", "decoded", cache_dir=tmp_path / "c")
    assert built.exit_code == 0, built.output
    assert "built" in built.stdout
    assert "decoded" in built.stdout
    again = run("cache", config, "--stream", "decoded", "--json", cache_dir=tmp_path / "c")
    (row,) = json.loads(again.stdout)
    assert (row["status"], row["batches"], row["examples"]) == ("already complete", 7, 27)
    assert Path(row["path"]).is_relative_to(tmp_path / "c")
    assert len(row["fingerprint"]) == 64
    forced = run("cache", config, "--stream", "decoded", "--force", "--json", cache_dir=tmp_path / "c")
    assert json.loads(forced.stdout)[0]["status"] == "built"
    assert len(calls(tmp_path)) == 2


def test_an_override_builds_another_cache(config, tmp_path):
    first = run("cache", config, "--stream", "decoded", "--json", cache_dir=tmp_path / "c")
    other = CliRunner().invoke(
        cli,
        ["dataset", "cache", str(config), "dataset.batches=3", "--stream", "decoded", "--json"]
        + ["--cache-dir", str(tmp_path / "c")],
    )
    rows = [json.loads(result.stdout)[0] for result in (first, other)]
    assert [row["status"] for row in rows] == ["built", "built"]
    assert rows[0]["fingerprint"] != rows[1]["fingerprint"]
    assert rows[1]["batches"] == 3


def test_check_finds_a_flipped_byte_and_exits_1(config, tmp_path):
    built = run("cache", config, "--stream", "decoded", "--json", cache_dir=tmp_path / "c")
    ok = run("cache", config, "--stream", "decoded", "--check", cache_dir=tmp_path / "c")
    assert ok.exit_code == 0, ok.output
    assert "decoded: ok" in ok.stdout
    data = Path(json.loads(built.stdout)[0]["path"]) / "data.arrow"
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF
    data.write_bytes(bytes(content))
    damaged = run("cache", config, "--stream", "decoded", "--check", "--json", cache_dir=tmp_path / "c")
    assert damaged.exit_code == 1
    assert json.loads(damaged.stdout)[0]["status"] == "damaged"
    assert "error: the cache of `decoded` is damaged" in damaged.stderr
    assert len(calls(tmp_path)) == 1  # --check builds nothing


def test_check_of_a_missing_cache_says_missing(config, tmp_path):
    result = run("cache", config, "--stream", "decoded", "--check", cache_dir=tmp_path / "c")
    assert result.exit_code == 0
    assert "decoded: missing" in result.stdout
    assert calls(tmp_path) == []


def test_clear_removes_every_cache_of_the_dataset(config, tmp_path):
    run("cache", config, "--stream", "decoded", "--stream", "train", cache_dir=tmp_path / "c")
    cleared = run("cache", config, "--clear", cache_dir=tmp_path / "c")
    assert cleared.exit_code == 0, cleared.output
    assert "removed the caches" in cleared.stdout
    assert [p for p in (tmp_path / "c").rglob("manifest.json")] == []
    assert "no caches" in run("cache", config, "--clear", cache_dir=tmp_path / "c").stdout


def test_errors_are_one_line_and_leave_nothing(config, tmp_path):
    unknown = run("cache", config, "--stream", "nope", cache_dir=tmp_path / "c")
    assert unknown.exit_code == 2
    assert "has no stream `nope`" in unknown.stderr
    objects = run("cache", config, "--stream", "objects", cache_dir=tmp_path / "c")
    assert objects.exit_code == 1
    assert objects.stderr.startswith("error: ")
    assert "thing" in objects.stderr
    assert len(objects.stderr.strip().splitlines()) == 1
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_dir() and ".tmp-" in p.name] == []
    exclusive = run("cache", config, "--check", "--clear", cache_dir=tmp_path / "c")
    assert exclusive.exit_code == 2


@pytest.mark.usefixtures("workers_import_tests")
def test_cache_on_workers_builds_what_in_process_builds(config, tmp_path):
    on_workers = run(
        "cache", config, "--stream", "decoded", "--workers", "2", "--json", cache_dir=tmp_path / "a"
    )
    assert on_workers.exit_code == 0, on_workers.output
    in_process = run("cache", config, "--stream", "decoded", "--json", cache_dir=tmp_path / "b")
    rows = [json.loads(result.stdout)[0] for result in (on_workers, in_process)]
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"]
    data = [(Path(row["path"]) / "data.arrow").read_bytes() for row in rows]
    assert data[0] == data[1]
