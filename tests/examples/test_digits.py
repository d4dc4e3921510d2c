"""Run the digits example end to end: its mirror, download, a cache built on workers, shuffled reads."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emloop_ds import StreamWrapper, create_dataset, load_config
from emloop_ds.cli.main import cli

pytest.importorskip("PIL", reason="the digits example decodes PNGs with Pillow: pip install pillow")

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits"
EXAMPLES_PER_PASS = 1797


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the example's archive with its own make_mirror.py; return the mirror folder."""
    folder = tmp_path_factory.mktemp("digits-mirror")
    runpy.run_path(str(EXAMPLE / "make_mirror.py"))["build_archive"](folder)
    return folder


def overrides(mirror: Path, work: Path) -> list[str]:
    return [f"dataset.url_root={mirror.as_uri()}/", f"dataset.data_root={work / 'data'}"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_pipeline_under_clirunner(mirror, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))  # worker processes import digits_dataset from there
    monkeypatch.setenv("EMLOOP_DS_CACHE", str(tmp_path / "cache"))
    args = [str(EXAMPLE), *overrides(mirror, tmp_path)]
    code, out, err = invoke("dataset", "download", *args)
    assert code == 0, err
    assert "1 downloaded" in out
    assert len(list((tmp_path / "data" / "digits" / "images").glob("*.png"))) == EXAMPLES_PER_PASS

    code, out, err = invoke("dataset", "cache", *args, "--stream", "decoded", "--workers", "2", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["status"], row["examples"], row["batches"]) == ("built", EXAMPLES_PER_PASS, 29)

    code, out, err = invoke("dataset", "stream", *args, "--workers", "2", "--epochs", "2", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["batches"], summary["examples"]) == (58, 2 * EXAMPLES_PER_PASS)

    dataset = create_dataset(load_config(EXAMPLE / "config.yaml", overrides(mirror, tmp_path)))
    decoded = StreamWrapper(dataset.decoded_stream, "decoded")
    images = np.concatenate([batch["images"] for batch in decoded])
    assert images.shape == (EXAMPLES_PER_PASS, 32, 32)
    assert images.dtype == np.uint8
    train = StreamWrapper(dataset.train_stream, "train", workers=2)
    with train:
        passes = [np.concatenate([batch["labels"] for batch in train]) for _ in range(2)]
    train.close()
    labels = np.concatenate([batch["labels"] for batch in StreamWrapper(dataset.decoded_stream)])
    for shuffled in passes:  # every example once per pass, in a new order
        assert sorted(shuffled.tolist()) == sorted(labels.tolist())
    assert not np.array_equal(passes[0], passes[1])
    assert set(np.unique(labels).tolist()) == set(range(10))


def test_the_commands_of_the_readme_as_a_subprocess(mirror, tmp_path, emloop_command):
    environment = {**os.environ, "EMLOOP_DS_CACHE": str(tmp_path / "cache")}
    args = [str(EXAMPLE), *overrides(mirror, tmp_path)]
    for command in (
        ["dataset", "download", *args],
        ["dataset", "stream", *args, "--workers", "2", "--json"],  # builds the cache on first use
        ["dataset", "cache", *args, "--stream", "decoded", "--json"],
    ):
        done = subprocess.run(
            [emloop_command, *command],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["status"] == "already complete"  # the stream's first read built it
    assert "\r" not in done.stderr


def test_streams_say_to_download_first(tmp_path):
    dataset = create_dataset(load_config(EXAMPLE / "config.yaml", [f"dataset.data_root={tmp_path}"]))
    code, out, err = invoke(
        "dataset", "stream", str(EXAMPLE), f"dataset.data_root={tmp_path}", "--stream", "decoded"
    )
    assert code == 1
    assert "run `emloop dataset download` with this config first" in err
    assert dataset.data_root == str(tmp_path)
