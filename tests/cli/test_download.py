"""Tests of ``emloop dataset download``: exit codes, stdout and stderr, checked separately."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emloop_ds import NoProgress
from emloop_ds.cli.download import _PreloadRich
from emloop_ds.cli.main import cli
from tests.archives import tar_gz
from tests.http_server import Fault, LoopbackServer

DATA = os.urandom(40_000)
SHA256 = hashlib.sha256(DATA).hexdigest()


def _config(tmp_path: Path, entries: str, dataset_class: str = "emloop_ds.DownloadableDataset") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"dataset:\n  class: {dataset_class}\n  data_root: {tmp_path / 'data'}\n  download_urls:\n{entries}",
        encoding="utf-8",
    )
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["dataset", "download", *args])


def test_download_prints_a_table_and_exits_0(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    result = _run(str(_config(tmp_path, f"    - url: {url}\n      sha256: {SHA256}\n")))
    assert result.exit_code == 0, result.stderr
    assert "data.bin" in result.stdout
    assert "downloaded" in result.stdout
    assert "39.1 KiB" in result.stdout
    assert "error" not in result.stderr
    assert (tmp_path / "data" / "data.bin").read_bytes() == DATA


def test_table_prints_file_names_literally(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    entries = f"    - url: {url}\n      filename: '[bold]x:smile:.bin'\n"
    result = _run(str(_config(tmp_path, entries)))
    assert result.exit_code == 0, result.stderr
    assert "[bold]x:smile:.bin" in result.stdout


def test_second_run_is_already_complete_and_force_downloads_again(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    config = str(_config(tmp_path, f"    - {http_server.add('/data.bin', DATA)}\n"))
    assert _run(config).exit_code == 0
    second = _run(config)
    assert "already complete" in second.stdout
    assert len(http_server.requests()) == 1
    forced = _run(config, "--force")
    assert "downloaded" in forced.stdout
    assert len(http_server.requests()) == 2


def test_json_reports_each_file(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA)
    result = _run(str(_config(tmp_path, f"    - {url}\n")), "--json")
    assert result.exit_code == 0
    [report] = json.loads(result.stdout)
    assert report["filename"] == "data.bin"
    assert report["status"] == "downloaded"
    assert report["size_bytes"] == len(DATA)
    assert report["checksum"] == {"algorithm": "sha256", "digest": SHA256}
    assert report["error"] is None


def test_failures_are_one_line_each_after_the_others_finish(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    good = http_server.add("/good.bin", DATA)
    missing = http_server.add("/missing.bin", DATA, Fault(status=404))
    bad_sum = http_server.add("/bad.bin", DATA)
    entries = f"    - {missing}\n    - {good}\n    - url: {bad_sum}\n      sha256: '{'0' * 64}'\n"
    result = _run(str(_config(tmp_path, entries)))
    assert result.exit_code == 1
    assert "good.bin" in result.stdout
    assert "failed" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: cannot download {missing}: HTTP 404 Not Found; check the URL",
        f"error: checksum mismatch for {bad_sum}: expected sha256 {'0' * 64}, got {SHA256}; the file was not "
        "kept. Check sha256 in the config or ask the data's publisher",
        "error: 2 of 3 files failed; fix the causes above and run the command again "
        "(complete files are kept, partial ones resumed)",
    ]
    assert (tmp_path / "data" / "good.bin").read_bytes() == DATA
    assert not (tmp_path / "data" / "bad.bin").exists()


def test_verbose_shows_the_traceback_of_a_failure(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/missing.bin", DATA, Fault(status=404))
    result = _run(str(_config(tmp_path, f"    - {url}\n")), "--verbose")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "emloop_ds.core.errors.DownloadError: cannot download" in result.stderr


def test_unsafe_archive_is_refused(http_server: LoopbackServer, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("escape")
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(info)
    url = http_server.add("/set.tar.gz", buffer.getvalue())
    result = _run(str(_config(tmp_path, f"    - {url}\n")))
    assert result.exit_code == 1
    assert "refused to extract set.tar.gz: member 'escape' is a link to '../../outside'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("sleeps")
def test_stalled_transfer_is_retried_after_the_timeout(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA, Fault(stall_after=10))
    result = _run(str(_config(tmp_path, f"    - {url}\n")), "--timeout", "0.2")
    assert result.exit_code == 0, result.stderr
    assert "data.bin: no data for 0.2 s (stalled transfer); retry 1 of 4 in 1 s" in result.stderr
    assert (tmp_path / "data" / "data.bin").read_bytes() == DATA


def test_bad_entry_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(str(_config(tmp_path, "    - ftp://example.org/a.zip\n")))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: download_urls[0]: cannot download 'ftp://example.org/a.zip'")


def test_dataset_without_downloads_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "plain_dataset.py").write_text(
        "from emloop_ds import BaseDataset\n"
        "class Plain(BaseDataset):\n"
        "    def _configure_dataset(self, output_dir, **kwargs):\n"
        "        pass\n",
        encoding="utf-8",
    )
    config = tmp_path / "config.yaml"
    config.write_text("dataset:\n  class: plain_dataset.Plain\n", encoding="utf-8")
    result = _run(str(config))
    assert result.exit_code == 2
    assert "has no files to download; derive it from emloop_ds.DownloadableDataset" in result.stderr


def test_a_dataset_with_its_own_download_method_is_called(tmp_path: Path) -> None:
    (tmp_path / "own_download.py").write_text(
        "from emloop_ds import DownloadableDataset\n"
        "class Own(DownloadableDataset):\n"
        "    def download(self):\n"
        "        print('own download of', self.data_root)\n",
        encoding="utf-8",
    )
    result = _run(str(_config(tmp_path, "    []\n", dataset_class="own_download.Own")))
    assert result.exit_code == 0
    assert "own download of" in result.stdout


def test_help_start_up_imports_no_download_machinery() -> None:
    heavy = ("rich", "tqdm", "requests", "urllib3", "filelock", "http.client", "tarfile", "zipfile")
    code = f"import sys, emloop_ds.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


def test_url_root_is_repointed_at_a_file_mirror_with_one_override(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(DATA)
    (mirror / "b.bin").write_bytes(DATA[:100])
    config = tmp_path / "config.yaml"
    config.write_text(
        "dataset:\n  class: emloop_ds.DownloadableDataset\n"
        f"  data_root: {tmp_path / 'data'}\n"
        "  url_root: https://data.invalid/sets/\n"
        "  download_filenames:\n    - a.bin\n"
        f"    - {{filename: b.bin, sha256: {hashlib.sha256(DATA[:100]).hexdigest()}}}\n",
        encoding="utf-8",
    )
    result = _run(str(config), f"dataset.url_root={mirror.as_uri()}/")
    assert result.exit_code == 0, result.stderr
    assert "2 files, 39.2 KiB: 2 downloaded" in result.stdout
    assert (tmp_path / "data" / "b.bin").read_bytes() == DATA[:100]


def test_mirror_that_failed_before_another_succeeded_is_one_warning(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    dead = http_server.add("/dead/data.bin", DATA, Fault(status=404))
    good = http_server.add("/good/data.bin", DATA)
    result = _run(str(_config(tmp_path, f"    - url: [{dead}, {good}]\n      sha256: '{SHA256}'\n")))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: data.bin: mirror {dead} failed (cannot download {dead}: HTTP 404 Not Found; check the "
        f"URL); downloaded from {good}"
    ]


def test_unresolvable_host_fails_fast_with_its_name(tmp_path: Path) -> None:
    result = _run(str(_config(tmp_path, "    - https://no-such-host.invalid/data.bin\n")))
    assert result.exit_code == 1
    assert "cannot resolve host no-such-host.invalid" in result.stderr
    assert "retry" not in result.stderr


def test_table_lists_at_most_20_files_failures_first_and_a_summary(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    entries = "".join(f"    - {http_server.add(f'/f{n:02d}.bin', DATA[: n + 1])}\n" for n in range(24))
    entries += f"    - {http_server.add('/missing.bin', DATA, Fault(status=404))}\n"
    result = _run(str(_config(tmp_path, entries)))
    assert result.exit_code == 1
    rows = [line for line in result.stdout.splitlines() if ".bin" in line]
    assert len(rows) == 20
    assert "missing.bin" in rows[0]
    assert "25 files, 300 B: 24 downloaded, 1 failed (5 not listed; --json lists every file)" in result.stdout
    assert len(json.loads(_run(str(_config(tmp_path, entries)), "--json").stdout)) == 25


def test_progress_on_a_non_terminal_is_lines_not_bars(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add("/data.bin", DATA, Fault(stall_after=10))
    result = _run(str(_config(tmp_path, f"    - {url}\n")), "--timeout", "0.2")
    assert result.exit_code == 0, result.stderr
    assert "\r" not in result.stderr  # no bar redrawing in a log
    assert "data.bin: no data for 0.2 s (stalled transfer); retry 1 of 4 in 1 s" in result.stderr


def _check(tmp_path: Path, entries: str) -> Result:
    return _run(str(_config(tmp_path, entries)), "--check")


def test_check_on_intact_missing_and_corrupt_files(http_server: LoopbackServer, tmp_path: Path) -> None:
    archive = tar_gz({"set/a.txt": b"alpha", "set/b.txt": b"beta"})
    entries = (
        f"    - {http_server.add('/one.bin', DATA)}\n"
        f"    - {http_server.add('/two.bin', DATA)}\n"
        f"    - {http_server.add('/set.tar.gz', archive)}\n"
    )
    assert _run(str(_config(tmp_path, entries))).exit_code == 0
    requests_before = len(http_server.requests())

    intact = _check(tmp_path, entries)
    assert intact.exit_code == 0, intact.stderr
    assert "3 files checked: 3 intact" in intact.stdout

    data = tmp_path / "data"
    (data / "one.bin").unlink()
    (data / "two.bin").write_bytes(b"x" * len(DATA))  # same size, other bytes
    (data / "set" / "b.txt").write_bytes(b"BETA")  # an extracted file changed
    damaged = _check(tmp_path, entries)
    assert damaged.exit_code == 1
    assert "one.bin" in damaged.stdout
    assert "missing" in damaged.stdout
    assert "expected sha256" in damaged.stdout
    assert "extracted set/b.txt has sha256" in damaged.stdout
    assert "3 files checked: 2 corrupt, 1 missing" in damaged.stdout
    assert damaged.stderr.startswith("error: 3 of 3 files are missing, corrupt or incomplete")
    reports = {
        item["filename"]: item
        for item in json.loads(_run(str(_config(tmp_path, entries)), "--check", "--json").stdout)
    }
    assert reports["one.bin"]["status"] == "missing"
    assert reports["two.bin"]["status"] == "corrupt"
    assert len(http_server.requests()) == requests_before  # --check makes no request


def test_check_reports_files_never_downloaded(tmp_path: Path) -> None:
    result = _check(tmp_path, "    - https://example.invalid/a.bin\n")
    assert result.exit_code == 1
    assert "1 file checked: 1 missing" in result.stdout


def test_status_retries_are_noted_next_to_the_file(
    http_server: LoopbackServer, tmp_path: Path, sleeps: list[float]
) -> None:
    url = http_server.add("/data.bin", DATA, Fault(status=503), Fault(status=429, retry_after="3"))
    result = _run(str(_config(tmp_path, f"    - {url}\n")))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "data.bin: HTTP 503 Service Unavailable; retry 1 of 4 in 1 s",
        "data.bin: HTTP 429 Too Many Requests; retry 2 of 4 in 3 s",
    ]
    assert sleeps == [1.0, 3.0]


def test_rich_is_imported_once_the_first_response_arrives_not_before() -> None:
    progress = _PreloadRich(NoProgress())
    progress.start_run(2)
    first, second = progress.open_file("a.bin"), progress.open_file("b.bin")
    first.note("waiting for another process that is downloading it")
    assert not progress.preload_started  # the requests go out first: the import would hold the GIL
    first.start(100, 0)
    second.start(100, 0)  # started once
    progress.join()
    assert progress.preload_started
    for file in (first, second):
        file.advance(100)
        file.close()
    progress.end_run()


def test_a_run_without_transfers_never_starts_the_import() -> None:
    progress = _PreloadRich(NoProgress())
    progress.start_run(1)
    progress.finish_file("a.bin", "already complete")
    progress.end_run()
    progress.join()  # returns at once
    assert not progress.preload_started


LONG_NAME = "a-file-name-longer-than-a-terminal-line-" * 3 + ".bin"


def test_a_piped_stdout_gets_a_plain_table_on_one_line_per_file(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    entries = (
        f"    - {http_server.add('/short.bin', DATA)}\n"
        f"    - url: {http_server.add('/long', DATA[:10])}\n      filename: {LONG_NAME}\n"
    )
    result = _run(str(_config(tmp_path, entries)))  # CliRunner's stdout is no terminal
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    times = [line.split("  ")[-2].strip() for line in lines[1:3]]
    assert all(time.endswith(" s") for time in times)
    width = len(LONG_NAME)
    assert lines == [
        f"{'file':<{width}}      size   time  status",
        f"{'short.bin':<{width}}  39.1 KiB  {times[0]:>5}  downloaded",
        f"{LONG_NAME}      10 B  {times[1]:>5}  downloaded",
        "2 files, 39.1 KiB: 2 downloaded",
    ]


def test_a_piped_check_gets_a_plain_table_of_the_damaged_files(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    entries = f"    - {http_server.add('/one.bin', DATA)}\n    - {http_server.add('/two.bin', DATA)}\n"
    assert _run(str(_config(tmp_path, entries))).exit_code == 0
    (tmp_path / "data" / "one.bin").unlink()
    result = _check(tmp_path, entries)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "file     status   problem",
        "one.bin  missing  not in data_root",
        "2 files checked: 1 missing, 1 intact",
    ]


def _imported_modules(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the installed ``emloop`` with stdout piped; return the process and every module it imported."""
    emloop = Path(sys.executable).with_name("emloop")
    ran = subprocess.run(
        [sys.executable, "-X", "importtime", str(emloop), *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    imported = {
        line.rpartition("|")[2].strip() for line in ran.stderr.splitlines() if line.startswith("import time:")
    }
    return ran, imported


def test_a_download_piped_to_a_file_or_log_never_imports_rich(
    http_server: LoopbackServer, tmp_path: Path
) -> None:
    config = str(_config(tmp_path, f"    - {http_server.add('/data.bin', DATA)}\n"))
    for command, first_line in (
        (["dataset", "download", config], "file size time status"),
        (["dataset", "download", config], "file size time status"),  # nothing to do
        (["dataset", "download", config, "--check"], "1 file checked: 1 intact"),
        (["dataset", "download", config, "--json"], "["),
    ):
        ran, imported = _imported_modules(command, tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert " ".join(ran.stdout.splitlines()[0].split()) == first_line  # column widths follow the cells
        assert "emloop_ds.cli.download" in imported  # the profile is of the command
        assert not {module for module in imported if module.split(".")[0] == "rich"}, command
        # nor what a download of plain files does not use: archives' extraction, the stream library
        assert not imported & {"emloop_ds.core.download.extract", "emloop_ds.core.stream.wrapper"}, command
    assert ran.stdout.count('"status": "already complete"') == 1
