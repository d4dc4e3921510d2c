"""`emloop dataset info`: exit codes for broken streams, NaN and infinities, shapes, --stats, ASCII output."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from emloop_ds.cli.main import cli
from emloop_ds.cli.render import sparkline

WriteDataset = Callable[..., Path]

DATASET = """
import numpy as np

from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, broken="", **kwargs):
        self.broken = broken

    def train_stream(self):
        for n in range(3):
            yield {
                "x": np.array([[0.5, np.nan], [np.inf, -np.inf], [2.0, n]], dtype=np.float32)[: 3 - n],
                "label": [n, 1, 1][: 3 - n],
                "température": ["chaud", "froid", "chaud"][: 3 - n],
            }

    def valid_stream(self):
        if self.broken == "raises":
            raise OSError("valid.csv is missing")
        if self.broken == "nothing":
            return
        if self.broken == "list":
            yield [1, 2]
        if self.broken == "unequal":
            yield {"x": [1, 2, 3], "y": [1, 2]}
        if self.broken == "later":
            yield {"x": [1, 2]}
            raise OSError("valid-2.csv is missing")
        if self.broken == "sources":
            yield {"x": [1, 2]}
            yield {"z": [1, 2]}
        yield {"x": [1, 2]}
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def strict_json(text: str) -> Any:
    """Parse JSON that must hold no NaN or Infinity tokens (Python's json would accept them)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def streams_of(out: str) -> dict[str, Any]:
    return {stream["name"]: stream for stream in strict_json(out)["streams"]}


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("raises", "batch 1 raised OSError: valid.csv is missing"),
        ("nothing", "the stream yielded no batches"),
        ("list", "batch 1 is a list, not a mapping of source names to examples"),
    ],
)
def test_a_broken_stream_exits_1_after_the_report_of_every_stream(
    write_dataset: WriteDataset, broken: str, error: str
) -> None:
    code, out, err = invoke("dataset", "info", str(write_dataset(DATASET)), f"dataset.broken={broken}")
    assert code == 1
    assert "train stream" in out  # the sound stream is still reported
    assert f"valid stream: broken: {error}" in " ".join(out.split())
    lines = err.splitlines()
    assert f"warning: stream `valid` is broken: {error}" in lines
    assert lines[-1].startswith("error: 1 of 2 streams broken: `valid`")
    assert "--allow-broken" in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1


def test_json_of_a_broken_dataset_is_the_whole_report_with_exit_1(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("dataset", "info", str(write_dataset(DATASET)), "--json", "dataset.broken=raises")
    assert code == 1
    streams = streams_of(out)
    assert streams["valid"] == {
        "name": "valid",
        "error": "batch 1 raised OSError: valid.csv is missing",
        "sources": [],
    }
    assert [source["name"] for source in streams["train"]["sources"]] == ["x", "label", "température"]
    assert err.splitlines()[-1].startswith("error: 1 of 2 streams broken")


def test_allow_broken_exits_0_with_the_same_report(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(DATASET))
    code, out, err = invoke("dataset", "info", config, "--json", "dataset.broken=raises", "--allow-broken")
    assert code == 0
    assert streams_of(out)["valid"]["error"] == "batch 1 raised OSError: valid.csv is missing"
    assert "warning: stream `valid` is broken" in err
    assert "error:" not in err
    assert invoke("dataset", "info", config)[0] == 0  # nothing broken: exit 0 without the flag too


def test_sources_of_unequal_length_are_an_error_of_their_stream(write_dataset: WriteDataset) -> None:
    code, out, err = invoke(
        "dataset", "info", str(write_dataset(DATASET)), "--json", "dataset.broken=unequal"
    )
    assert code == 1
    error = streams_of(out)["valid"]["error"]
    assert error.startswith("batch 1 has sources of unequal length (`x` 3, `y` 2)")
    assert err.splitlines()[-1].startswith("error: 1 of 2 streams broken: `valid`")


def test_a_stream_failing_at_batch_2_names_it_and_keeps_what_batch_1_showed(
    write_dataset: WriteDataset,
) -> None:
    config = str(write_dataset(DATASET))
    code, out, err = invoke("dataset", "info", config, "--batches", "3", "--json", "dataset.broken=later")
    assert code == 1
    valid = streams_of(out)["valid"]
    assert valid["error"] == "batch 2 raised OSError: valid-2.csv is missing"
    assert [(source["name"], source["min"], source["max"]) for source in valid["sources"]] == [("x", 1, 2)]
    assert err.splitlines()[-1].startswith("error: 1 of 2 streams broken: `valid`")
    code, out, err = invoke("dataset", "info", config, "--batches", "3", "dataset.broken=later")
    assert code == 1
    table = out[out.index("valid stream") :]
    assert re.search(r"x +│ int64 +│ \[2\] +│ 1 – 2 ", table)
    assert "valid stream: broken: batch 2 raised OSError: valid-2.csv is missing" in " ".join(table.split())


def test_batches_with_other_sources_are_an_error_of_their_stream(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(DATASET))
    code, out, err = invoke("dataset", "info", config, "--batches", "2", "--json", "dataset.broken=sources")
    assert code == 1
    valid = streams_of(out)["valid"]
    assert valid["error"] == (
        "batch 2 has other sources than batch 1 (missing `x`; extra `z`); "
        "make every batch of a stream hold the same sources"
    )
    assert [source["name"] for source in valid["sources"]] == ["x"]
    assert "warning: stream `valid` is broken: batch 2 has other sources than batch 1" in err
    assert err.splitlines()[-1].startswith("error: 1 of 2 streams broken: `valid`")
    assert invoke("dataset", "info", config, "dataset.broken=sources")[0] == 0  # batch 1 alone is sound


PADDED_PER_BATCH = """
import numpy as np

from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        pass

    def train_stream(self):
        for length in (5, 7, 6):
            yield {"tokens": np.zeros((4, length), dtype=np.int32), "words": [["a"] * length] * 4}
"""


def test_batches_padded_each_to_their_own_length_are_shown_as_none_not_ragged(
    write_dataset: WriteDataset,
) -> None:
    config = str(write_dataset(PADDED_PER_BATCH))
    code, out, err = invoke("dataset", "info", config, "--batches", "3")
    assert code == 0
    assert re.search(r"tokens +│ int32 +│ \[4, None\] +│ 0 – 0 +│ none +│ no ", out)
    assert re.search(r"words +│ <U1 +│ \[4, None\] +│ – +│ none +│ no ", out)
    assert err == ""
    code, out, _ = invoke("dataset", "info", config, "--batches", "3", "--json")
    assert code == 0
    sources = streams_of(out)["train"]["sources"]
    assert [(source["shape"], source["ragged"]) for source in sources] == [([4, None], False)] * 2


def test_nan_and_infinities_are_counted_in_json_and_the_range_is_finite(write_dataset: WriteDataset) -> None:
    code, out, _ = invoke("dataset", "info", str(write_dataset(DATASET)), "--json", "--batches", "3")
    assert code == 0
    x = streams_of(out)["train"]["sources"][0]
    assert (x["nan"], x["posinf"], x["neginf"]) == (3, 2, 2)
    assert (x["min"], x["max"]) == (0.0, 2.0)


def test_nan_and_infinities_are_shown_in_the_table_and_warned_about(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("dataset", "info", str(write_dataset(DATASET)))
    assert code == 0
    assert "NaN/inf" in out
    assert "1 NaN, 1 +inf, 1 -inf" in out
    assert "0.0 – 2.0" in out
    assert "warning: source `x` of stream `train` holds 1 NaN, 1 +inf, 1 -inf" in err


def test_a_dimension_that_differs_between_batches_is_null(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(DATASET))
    one = streams_of(invoke("dataset", "info", config, "--json")[1])["train"]["sources"][0]
    three = streams_of(invoke("dataset", "info", config, "--json", "--batches", "3")[1])["train"]["sources"][
        0
    ]
    assert (one["shape"], three["shape"], three["ragged"]) == ([3, 2], [None, 2], False)
    code, out, _ = invoke("dataset", "info", config, "--batches", "3")
    assert code == 0
    assert "[None, 2]" in out


def test_stats_json_has_exactly_the_documented_keys(write_dataset: WriteDataset) -> None:
    code, out, _ = invoke(
        "dataset", "info", str(write_dataset(DATASET)), "--json", "--batches", "3", "--stats"
    )
    assert code == 0
    x, label, word = streams_of(out)["train"]["sources"]
    assert set(x["stats"]) == {"mean", "std", "histogram"}
    assert x["stats"]["mean"] == pytest.approx((0.5 + 2.0 + 0.0 + 0.5 + 0.5) / 5)  # finite values only
    assert x["stats"]["std"] == pytest.approx(np.std([0.5, 2.0, 0.0, 0.5, 0.5]))
    assert x["stats"]["histogram"] == {
        "edges": [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
        "counts": [1, 0, 3, 0, 0, 0, 0, 1],
    }
    assert label["stats"]["values"] == {"0": 1, "1": 4, "2": 1}
    assert label["stats"]["mean"] == pytest.approx(1.0)
    assert sum(label["stats"]["histogram"]["counts"]) == 6
    assert word["stats"] == {
        "mean": None,
        "std": None,
        "histogram": None,
        "values": {"chaud": 4, "froid": 2},
    }


def test_without_stats_the_json_has_no_stats(write_dataset: WriteDataset) -> None:
    code, out, _ = invoke("dataset", "info", str(write_dataset(DATASET)), "--json")
    assert code == 0
    assert all("stats" not in source for source in streams_of(out)["train"]["sources"])


def test_stats_table_draws_a_sparkline_and_value_counts(write_dataset: WriteDataset) -> None:
    code, out, _ = invoke("dataset", "info", str(write_dataset(DATASET)), "--batches", "3", "--stats")
    assert code == 0
    assert "train stream: statistics" in out
    assert f"0 {sparkline([1, 0, 3, 0, 0, 0, 0, 1])} 2" in out
    assert "0: 1, 1: 4, 2: 1" in out
    assert "chaud: 4, froid: 2" in out


def test_sparkline_scales_to_the_largest_bin_and_leaves_empty_bins_blank() -> None:
    assert sparkline([0, 1, 2, 4, 8, 0, 7, 8]) == " ▁▂▄█ ▇█"
    assert sparkline([0] * 8) == " " * 8


def test_a_histogram_of_other_data_on_the_second_pass_is_warned_about(write_dataset: WriteDataset) -> None:
    shuffled = """
    import itertools

    from emloop_ds import BaseDataset

    calls = itertools.count()

    class Data(BaseDataset):
        def _configure_dataset(self, output_dir, **kwargs):
            pass

        def train_stream(self):
            yield {"x": [0.0, 1.0]} if next(calls) == 0 else {"x": [5.0, 1.0]}
    """
    code, _, err = invoke("dataset", "info", str(write_dataset(shuffled)), "--stats")
    assert code == 0
    assert (
        "warning: the histogram of source `x` of stream `train` holds 1 of the 2 values of the first pass"
        in err
    )


def test_a_failing_second_pass_keeps_the_first_pass_report(write_dataset: WriteDataset) -> None:
    fails_when_called_again = """
    import itertools

    from emloop_ds import BaseDataset

    calls = itertools.count()

    class Data(BaseDataset):
        def _configure_dataset(self, output_dir, **kwargs):
            pass

        def train_stream(self):
            call = next(calls)
            yield {"x": [0.5, 1.5]}
            if call == 1:
                raise OSError("shard 2 vanished")
            yield {"x": [2.5, 3.5]}
    """
    config = str(write_dataset(fails_when_called_again))
    code, out, err = invoke("dataset", "info", config, "--batches", "2", "--stats", "--json")
    assert code == 1
    train = streams_of(out)["train"]
    assert train["error"] == "the second pass for statistics failed: batch 2 raised OSError: shard 2 vanished"
    ((x),) = train["sources"]
    assert (x["min"], x["max"], "stats" in x) == (0.5, 3.5, False)
    assert err.splitlines()[-1].startswith("error: 1 of 1 streams broken: `train`")


FAR_APART = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        pass

    def train_stream(self):
        yield {"x": [-1e308, 1e308], "words": ["a", "b"]}
"""


def test_figures_that_overflow_are_null_in_json_and_a_dash_in_the_table(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(FAR_APART))
    code, out, _ = invoke("dataset", "info", config, "--stats", "--json")
    assert code == 0
    x, words = streams_of(out)["train"]["sources"]
    assert x["stats"] == {"mean": 0.0, "std": None, "histogram": None}
    assert (words["min"], words["stats"]["mean"], words["stats"]["std"]) == (None, None, None)
    code, out, _ = invoke("dataset", "info", config, "--stats")
    assert code == 0
    assert not re.search(r"\binf\b", out.replace("NaN/inf", ""))
    assert re.search(r"x +│ 0 +│ – +│ – +│ – ", out)  # mean, std, histogram, values
    assert re.search(r"words +│ – +│ – +│ – +│ a: 1, b: 1 ", out)
    assert re.search(r"words +│ <U1 +│ \[2\] +│ – +│", out)  # no range, as "min": null


ASCII_ENV = {"PYTHONIOENCODING": "ascii", "LC_ALL": "C", "COLUMNS": "200"}


def run_ascii(emloop_command: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LC_")} | ASCII_ENV
    return subprocess.run([emloop_command, *args], capture_output=True, timeout=60, check=False, env=env)


def test_info_degrades_to_ascii_on_a_terminal_that_cannot_encode_unicode(
    emloop_command: str, write_dataset: WriteDataset
) -> None:
    config = str(write_dataset(DATASET))
    result = run_ascii(emloop_command, "dataset", "info", config, "--batches", "3", "--stats")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("ascii")  # raises if anything but ASCII was written
    assert "Traceback" not in result.stderr.decode("utf-8", "replace")
    assert "temp?rature" in out
    assert "0.0 - 2.0" in out
    assert "0 - #    - 2" in out  # the sparkline of test_stats_table_draws_a_sparkline_and_value_counts
    assert "+---" in out or "|" in out  # rich's ASCII box


def test_json_and_broken_reports_stay_ascii_and_exit_1(
    emloop_command: str, write_dataset: WriteDataset
) -> None:
    config = str(write_dataset(DATASET))
    result = run_ascii(
        emloop_command, "dataset", "info", config, "--json", "--stats", "dataset.broken=raises"
    )
    assert result.returncode == 1
    report = strict_json(result.stdout.decode("ascii"))
    assert report["streams"][0]["sources"][2]["name"] == "température"
    assert result.stderr.decode("ascii").splitlines()[-1].startswith("error: 1 of 2 streams broken")
    table = run_ascii(emloop_command, "dataset", "info", config, "dataset.broken=unequal")
    assert table.returncode == 1
    assert "valid stream: broken: batch 1 has sources of unequal length" in table.stdout.decode("ascii")


def test_a_c_locale_without_utf8_mode_gets_ascii_and_no_traceback(
    emloop_command: str, write_dataset: WriteDataset
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LC_", "LANG", "PYTHONIOENCODING", "PYTHONUTF8"))
    }
    env |= {"LC_ALL": "C", "PYTHONUTF8": "0", "COLUMNS": "200"}  # stdout: ascii with surrogateescape
    config = str(write_dataset(DATASET))
    for args in (["--batches", "3", "--stats"], ["--batches", "3", "dataset.broken=later"]):
        result = subprocess.run(
            [emloop_command, "dataset", "info", config, *args],
            capture_output=True,
            timeout=60,
            check=False,
            env=env,
        )
        err = result.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err
        assert result.returncode == (1 if "dataset.broken=later" in args else 0), err
        out = result.stdout.decode("ascii")
        assert "temp?rature" in out
        assert "0.0 - 2.0" in out
        assert "warning: source `x` of stream `train` holds 3 NaN, 2 +inf, 2 -inf" in err
    assert "valid stream: broken: batch 2 raised OSError: valid-2.csv is missing" in out
    assert err.splitlines()[-1].startswith("error: 1 of 2 streams broken: `valid`")


def test_stream_summary_degrades_to_ascii_too(emloop_command: str, write_dataset: WriteDataset) -> None:
    lists_only = """
    from emloop_ds import BaseDataset

    class Data(BaseDataset):
        def _configure_dataset(self, output_dir, **kwargs):
            pass

        def train_stream(self):
            yield {"x": [1, 2]}
    """
    result = run_ascii(emloop_command, "dataset", "stream", str(write_dataset(lists_only)))
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("ascii")
    assert re.search(r"data +\| +- +\|", out)  # the unknown figure "–" of lists, as "-"
