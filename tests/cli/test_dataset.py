"""`emloop dataset info` and `emloop dataset METHOD`, through CliRunner and the installed command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from emloop_ds.cli.main import cli
from emloop_ds.core.config import decode_yaml

WriteDataset = Callable[..., Path]
IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris" / "config.yaml"

DATASET = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, batch_size=4, fail=False, **kwargs):
        if fail:
            raise RuntimeError("cannot open data.bin")
        self.batch_size = batch_size

    def train_stream(self):
        yield {"x": list(range(self.batch_size)), "words": [[1], [1, 2]] * (self.batch_size // 2)}

    def broken_stream(self):
        raise ValueError("split file missing")

    def summary(self):
        return f"batch size {self.batch_size}"

    def crash(self):
        raise KeyError("label")
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_info_prints_a_table_per_stream() -> None:
    code, out, err = invoke("dataset", "info", str(IRIS))
    assert code == 0, err
    assert "train stream" in out
    assert "test stream" in out
    assert "features" in out
    assert "float32" in out
    assert "[16, 4]" in out


def test_info_json_has_the_documented_shape() -> None:
    code, out, _ = invoke("dataset", "info", str(IRIS), "--json", "dataset.batch_size=8")
    assert code == 0
    data = json.loads(out)
    assert data["dataset"] == "iris_dataset.IrisDataset"
    test = next(stream for stream in data["streams"] if stream["name"] == "test")
    assert test == {
        "name": "test",
        "error": None,
        "sources": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": [8, 4],
                "min": 0.1,
                "max": 5.8,
                "nan": 0,
                "posinf": 0,
                "neginf": 0,
                "ragged": False,
            },
            {
                "name": "labels",
                "dtype": "int64",
                "shape": [8],
                "min": 0,
                "max": 0,
                "nan": 0,
                "posinf": 0,
                "neginf": 0,
                "ragged": False,
            },
        ],
    }


def test_info_reports_broken_streams_and_warns_of_ragged_sources(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("dataset", "info", str(write_dataset(DATASET)), "--json")
    assert code == 1
    streams = {stream["name"]: stream for stream in json.loads(out)["streams"]}
    assert streams["broken"] == {"name": "broken", "error": "ValueError: split file missing", "sources": []}
    assert [s["ragged"] for s in streams["train"]["sources"]] == [False, True]
    assert "warning: source `words` of stream `train` is ragged" in err
    assert "warning: stream `broken` is broken: ValueError: split file missing" in err


def test_info_inspects_several_batches_when_asked() -> None:
    code, out, _ = invoke("dataset", "info", str(IRIS), "--json", "--batches", "8")
    train = next(stream for stream in json.loads(out)["streams"] if stream["name"] == "train")
    assert code == 0
    assert train["sources"][1]["max"] == 2


def test_method_command_prints_what_the_method_returns(write_dataset: WriteDataset) -> None:
    code, out, _ = invoke("dataset", "summary", str(write_dataset(DATASET)), "dataset.batch_size=6")
    assert (code, out) == (0, "batch size 6\n")


def test_method_command_accepts_dashes_for_underscores() -> None:
    code, out, _ = invoke("dataset", "class-counts", str(IRIS))
    assert code == 0
    assert "train: setosa 40, versicolor 40, virginica 40" in out


def test_dataset_help_lists_the_commands() -> None:
    code, out, _ = invoke("dataset", "--help")
    assert code == 0
    assert "info" in out
    assert "METHOD CONFIG" in out


def run_emloop(command: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([command, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


@pytest.mark.parametrize(
    ("config_text", "extra", "code", "message"),
    [
        (None, (), 2, "does not exist; pass the path of an emloop YAML config"),
        ("dataset:\n  class: [a\n", (), 2, "YAML syntax error in .*config.yaml:3:1"),
        ("model: {}\n", (), 2, "has no `dataset` section"),
        ("dataset:\n  batch_size: 3\n", (), 2, "has no `class`"),
        ("dataset:\n  class: nosuch.Data\n", (), 2, "cannot find module `nosuch`"),
        ("dataset:\n  class: {module}.Missing\n", (), 2, "has no class `Missing`"),
        ("dataset:\n  class: {module}.Data\n", ("bad-override",), 2, "cannot read override 'bad-override'"),
        (
            "dataset:\n  class: {module}.Data\n  fail: true\n",
            (),
            1,
            "failed to build: RuntimeError: cannot open",
        ),
    ],
)
def test_info_errors_are_one_line_with_exit_code(
    emloop_command: str,
    write_dataset: WriteDataset,
    tmp_path: Path,
    config_text: str | None,
    extra: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    config = tmp_path / "missing.yaml" if config_text is None else write_dataset(DATASET, config_text)
    result = run_emloop(emloop_command, "dataset", "info", str(config), *extra)
    assert result.returncode == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(message, lines[0])


@pytest.mark.parametrize(
    ("method", "code", "message"),
    [
        (
            "nothing",
            2,
            "`nothing` is neither a command nor a method of testdata_[0-9]+.Data; commands: cache, download, "
            "info, stream; methods: broken-stream, crash, stream-info, summary, train-stream",
        ),
        ("crash", 1, r"Data\.crash\(\) failed: KeyError: 'label'"),
        ("broken-stream", 1, r"Data\.broken_stream\(\) failed"),
    ],
)
def test_method_errors_are_one_line_with_exit_code(
    emloop_command: str, write_dataset: WriteDataset, method: str, code: int, message: str
) -> None:
    result = run_emloop(emloop_command, "dataset", method, str(write_dataset(DATASET)))
    assert result.returncode == code
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert re.search(message, result.stderr)


def test_verbose_shows_the_traceback_with_its_cause(emloop_command: str, write_dataset: WriteDataset) -> None:
    result = run_emloop(emloop_command, "dataset", "crash", str(write_dataset(DATASET)), "--verbose")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "KeyError: 'label'" in result.stderr
    assert "The above exception was the direct cause" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: Data.crash() failed")


def test_installed_command_runs_the_example_from_another_directory(
    emloop_command: str, tmp_path: Path
) -> None:
    result = run_emloop(emloop_command, "dataset", "info", str(IRIS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train stream" in result.stdout


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emloop_ds", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "dataset" in result.stdout


@pytest.mark.parametrize("kind", ["device", "fifo", "too large"])
def test_a_config_that_is_no_small_regular_file_is_refused_in_one_line(
    emloop_command: str, tmp_path: Path, kind: str
) -> None:
    if kind == "device":
        config, message = Path("/dev/zero"), "config /dev/zero is a character device, not a regular file"
    elif kind == "fifo":
        config, message = tmp_path / "config.yaml", "config.yaml is a FIFO, not a regular file"
        os.mkfifo(config)
    else:
        config, message = tmp_path / "big.yaml", "big.yaml is larger than 10 MB, too large for a config"
        with config.open("wb") as file:
            file.truncate(50 * 1024 * 1024)
    result = run_emloop(emloop_command, "dataset", "info", str(config))
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_an_override_naming_no_section_is_one_line_naming_the_sections(write_dataset: WriteDataset) -> None:
    config = write_dataset(DATASET)
    code, out, err = invoke("dataset", "summary", str(config), "datset.batch_size=2")
    assert (code, out) == (2, "")
    assert err == (
        f"error: override 'datset.batch_size=2' names no section of config {config}: "
        "`datset` is not one of its sections (dataset); did you mean `dataset`?\n"
    )


def test_an_error_caused_by_an_override_names_the_override(write_dataset: WriteDataset) -> None:
    config = write_dataset(DATASET)
    code, out, err = invoke("dataset", "info", str(config), "dataset.class=nosuch.Data")
    assert (code, out) == (2, "")
    assert "cannot find module `nosuch` for dataset.class nosuch.Data in override 'dataset.class=" in err
    assert str(config) not in err


RESULTS = """
import enum
from pathlib import Path

import numpy as np

from emloop_ds import BaseDataset

class Level(enum.IntEnum):
    HIGH = 3

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, marker=None, **kwargs):
        if marker is not None:
            Path(marker).write_text("built")
        self.marker = marker

    def counts(self):
        return {"zebra": np.int64(3), "ant": 1, "nested": {"z": [1.5, float("nan")], "a": np.arange(3)}}

    def moments(self):
        return {"mean": np.float64(2.0), "std": np.array(0.5), "level": Level.HIGH, "ok": np.bool_(True)}

    def loop(self):
        result = {"a": [1]}
        result["a"].append(result)
        return result

    def deep(self):
        result = []
        for _ in range(100_000):
            result = [result]
        return result

    def splits(self):
        return ("train", "test")

    def size(self):
        return np.float32(2.5)

    def train_stream(self):
        Path(self.marker).write_text("read")
        yield {"x": [1]}

    def batches(self):
        return iter([{"x": [1]}])
"""


def test_a_mapping_result_is_printed_as_yaml_in_its_own_order(write_dataset: WriteDataset) -> None:
    code, out, err = invoke("dataset", "counts", str(write_dataset(RESULTS)))
    assert (code, err) == (0, "")
    assert out == "zebra: 3\nant: 1\nnested:\n  z:\n  - 1.5\n  - .nan\n  a:\n  - 0\n  - 1\n  - 2\n"


def test_numpy_scalars_and_int_enums_print_as_plain_numbers(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(RESULTS))
    assert invoke("dataset", "moments", config) == (0, "mean: 2.0\nstd: 0.5\nlevel: 3\nok: true\n", "")
    code, out, _ = invoke("dataset", "moments", config, "--json")
    assert (code, json.loads(out)) == (0, {"mean": 2.0, "std": 0.5, "level": 3, "ok": True})


@pytest.mark.parametrize("as_json", [(), ("--json",)])
@pytest.mark.parametrize(
    ("method", "reason"),
    [("loop", "it contains itself (a dict inside itself)"), ("deep", "it is nested too deeply")],
)
def test_an_unprintable_result_is_one_error_line(
    emloop_command: str, write_dataset: WriteDataset, method: str, reason: str, as_json: tuple[str, ...]
) -> None:
    result = run_emloop(emloop_command, "dataset", method, str(write_dataset(RESULTS)), *as_json)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: Data.{method}() returned a result that cannot be printed: {reason}; "
        "return plain data (mappings, lists, numbers, strings)\n"
    )


def test_results_are_printed_as_json_with_json(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(RESULTS))
    code, out, _ = invoke("dataset", "counts", config, "--json")
    assert code == 0
    assert json.loads(out) == {"zebra": 3, "ant": 1, "nested": {"z": [1.5, None], "a": [0, 1, 2]}}
    assert json.loads(invoke("dataset", "splits", config, "--json")[1]) == ["train", "test"]
    assert (
        json.loads(invoke("dataset", "summary", str(write_dataset(DATASET)), "--json")[1]) == "batch size 4"
    )


def test_sequences_are_yaml_lists_and_scalars_plain_text(write_dataset: WriteDataset) -> None:
    config = str(write_dataset(RESULTS))
    assert invoke("dataset", "splits", config) == (0, "- train\n- test\n", "")
    assert invoke("dataset", "size", config) == (0, "2.5\n", "")


@pytest.mark.parametrize(
    ("method", "hint"),
    [
        ("train-stream", "read it with `emloop dataset stream {config} --stream train`"),
        (
            "batches",
            "name the method `<name>_stream` and run `emloop dataset stream {config} --stream <name>`",
        ),
    ],
)
def test_a_stream_result_is_not_read_but_points_to_the_stream_command(
    write_dataset: WriteDataset, tmp_path: Path, method: str, hint: str
) -> None:
    marker = tmp_path / "marker.txt"
    config = write_dataset(RESULTS)
    code, out, err = invoke("dataset", method, str(config), f"dataset.marker={marker}")
    assert (code, out) == (0, "")
    assert err.startswith("note: Data.")
    assert "returned a stream, which is not printed; " in err
    assert hint.format(config=config) in err
    assert marker.read_text() == "built"  # the stream was never started


MARKED = """
from pathlib import Path

from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, marker, **kwargs):
        Path(marker).write_text("built")
        self.inform = lambda: "set on the instance"

    def summary(self):
        return "summary"

    @staticmethod
    def version():
        return "1.0"

    @classmethod
    def kinds(cls):
        return [cls.__name__]
"""


@pytest.mark.parametrize(
    ("typed", "suggestion"),
    [("inof", "did you mean `info`?"), ("stram", "did you mean `stream` or `stream-info`?")],
)
def test_a_mistyped_command_is_refused_before_building_the_dataset(
    write_dataset: WriteDataset, tmp_path: Path, typed: str, suggestion: str
) -> None:
    marker = tmp_path / "marker.txt"
    code, out, err = invoke("dataset", typed, str(write_dataset(MARKED)), f"dataset.marker={marker}")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: `{typed}` is neither a command nor a method of testdata_")
    assert suggestion in err
    assert err.endswith("methods: kinds, stream-info, summary, version\n")
    assert not marker.exists()


def test_a_mistyped_method_is_looked_up_on_the_built_dataset(
    write_dataset: WriteDataset, tmp_path: Path
) -> None:
    marker = tmp_path / "marker.txt"
    code, out, err = invoke("dataset", "sumary", str(write_dataset(MARKED)), f"dataset.marker={marker}")
    assert (code, out) == (2, "")
    assert "`sumary` is neither a command nor a method" in err
    assert "did you mean `summary`?" in err
    assert err.endswith("methods: inform, kinds, stream-info, summary, version\n")
    assert marker.read_text() == "built"


@pytest.mark.parametrize(
    ("method", "printed"),
    [("version", "1.0\n"), ("kinds", "- Data\n"), ("inform", "set on the instance\n")],
)  # `inform` is close to `info`: the source read shows it is set in _configure_dataset
def test_static_and_class_methods_and_callable_attributes_run_as_in_emloop(
    write_dataset: WriteDataset, tmp_path: Path, method: str, printed: str
) -> None:
    config = str(write_dataset(MARKED))
    assert invoke("dataset", method, config, f"dataset.marker={tmp_path / 'm'}") == (0, printed, "")


def test_a_mistyped_command_with_a_bad_config_is_named_first(tmp_path: Path) -> None:
    code, out, err = invoke("dataset", "inof", str(tmp_path / "missing.yaml"))
    assert (code, out) == (2, "")
    assert err.startswith("error: no command `inof`; did you mean `info`? (and config ")
    assert "missing.yaml does not exist" in err


DYNAMIC = """
from emloop_ds import BaseDataset

def register(cls):
    cls.summary = lambda self: "registered"
    return cls

@register
class Data(BaseDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        pass
"""


def test_a_class_its_source_cannot_tell_about_is_built_to_find_the_method(
    write_dataset: WriteDataset,
) -> None:
    config = str(write_dataset(DYNAMIC))
    assert invoke("dataset", "summary", config) == (0, "registered\n", "")
    code, out, err = invoke("dataset", "sumary", config)
    assert (code, out) == (2, "")
    assert err.startswith("error: `sumary` is neither a command nor a method of testdata_")
    assert err.endswith(
        ".Data; did you mean `summary`? commands: cache, download, info, stream; "
        "methods: stream-info, summary\n"
    )
    code, out, err = invoke("dataset", "inof", config)
    assert "did you mean `info`?" in err


FORGETFUL = """
import os

from emloop_ds import DownloadableDataset

class Data(DownloadableDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        pass

class Computed(DownloadableDataset):
    @property
    def data_root(self):
        return os.environ["EMLOOP_DS_TEST_NO_SUCH_VARIABLE"]
"""


@pytest.mark.parametrize(
    ("config_text", "code", "message"),
    [
        (
            "dataset:\n  class: {module}.Data\n  data_root: data\n  download_urls: [file:///nowhere/a.zip]\n",
            1,
            "error: Data._configure_dataset received data_root from the config but did not call super()",
        ),
        ("dataset:\n  class: {module}.Data\n", 2, "error: Data has no data_root; add `data_root: <folder>`"),
        (
            "dataset:\n  class: {module}.Computed\n  download_urls: [file:///nowhere/a.zip]\n",
            1,
            "error: Computed.data_root failed: KeyError: 'EMLOOP_DS_TEST_NO_SUCH_VARIABLE'; fix the",
        ),
    ],
)
def test_download_keys_that_are_lost_or_fail_are_one_error_line(
    emloop_command: str, write_dataset: WriteDataset, config_text: str, code: int, message: str
) -> None:
    config = write_dataset(FORGETFUL, config_text)
    result = run_emloop(emloop_command, "dataset", "download", str(config), cwd=config.parent)
    assert (result.returncode, result.stdout) == (code, "")
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith(message)
    verbose = run_emloop(emloop_command, "dataset", "download", str(config), "--verbose", cwd=config.parent)
    assert verbose.returncode == code
    assert "Traceback (most recent call last)" in verbose.stderr


UNICODE = """
from emloop_ds import BaseDataset

class Data(BaseDataset):
    def _configure_dataset(self, output_dir, **kwargs):
        pass

    def text(self):
        return "naïve – 東京"

    def mapping(self):
        return {"café": ["東京", 1.5]}

    def values_stream(self):
        yield {"x": [1]}

    def trouble(self):
        raise ValueError("bad café")
"""


@pytest.mark.parametrize(
    ("method", "stdout", "stderr"),
    [
        ("text", "na?ve - ????\n", ""),
        ("mapping", '"caf\\xE9":\n- "\\u6771\\u4EAC"\n- 1.5\n', ""),
        ("values-stream", "", "note: Data.values_stream() returned a stream, which is not printed; "),
        ("trouble", "", r"error: Data.trouble() failed: ValueError: bad caf\xe9 (--verbose shows"),
    ],
)
def test_a_terminal_that_cannot_encode_unicode_gets_ascii(
    emloop_command: str, write_dataset: WriteDataset, method: str, stdout: str, stderr: str
) -> None:
    config = write_dataset(UNICODE)
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [emloop_command, "dataset", method, str(config)], capture_output=True, timeout=60, env=environment
    )
    assert result.stdout.decode("ascii") == stdout
    assert result.stderr.decode("ascii").startswith(stderr)
    assert "Traceback" not in result.stderr.decode("ascii")
    assert result.returncode == (1 if method == "trouble" else 0)


def test_escaped_yaml_and_json_on_an_ascii_terminal_are_exact(
    emloop_command: str, write_dataset: WriteDataset
) -> None:
    config = str(write_dataset(UNICODE))
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}
    yaml_out, json_out = (
        subprocess.run(
            [emloop_command, "dataset", "mapping", config, *extra],
            capture_output=True,
            timeout=60,
            env=environment,
        ).stdout.decode("ascii")
        for extra in ((), ("--json",))
    )
    assert decode_yaml(yaml_out) == json.loads(json_out) == {"café": ["東京", 1.5]}
    code, out, _ = invoke("dataset", "mapping", config)  # a UTF-8 stdout gets the characters themselves
    assert (code, out) == (0, "café:\n- 東京\n- 1.5\n")


def test_a_class_with_thousands_of_methods_gets_a_short_suggestion(write_dataset: WriteDataset) -> None:
    methods = "".join(
        f"    def method_{index:04d}(self):\n        return {index}\n\n" for index in range(2000)
    )
    source = (
        "from emloop_ds import BaseDataset\n\nclass Data(BaseDataset):\n"
        "    def _configure_dataset(self, output_dir, **kwargs):\n        pass\n\n" + methods
    )
    config = str(write_dataset(source))
    assert invoke("dataset", "method-1999", config) == (0, "1999\n", "")
    code, out, err = invoke("dataset", "method-19999", config)
    assert (code, out) == (2, "")
    assert "did you mean `method-1999`" in err
    assert err.endswith(", method-0029 and 1971 more\n")
    assert len(err) < 1000


def test_dataset_help_gives_each_command_one_line_and_says_how_to_list_methods() -> None:
    code, out, err = invoke("dataset", "--help")
    assert (code, err) == (0, "")
    commands = out.split("Commands:\n")[1].splitlines()
    assert [line.split()[0] for line in commands] == ["cache", "download", "info", "stream"]
    assert all(len(line) <= 80 and not line.endswith("...") for line in commands)
    assert "emloop dataset methods CONFIG" in " ".join(out.split())


def test_the_way_the_help_gives_to_list_methods_lists_them() -> None:
    code, out, err = invoke("dataset", "methods", str(IRIS))
    assert (code, out) == (2, "")
    assert err.endswith("methods: class-counts, stream-info, test-stream, train-stream\n")
