"""Test resume across processes: SIGKILL a reader that saves its state after each batch, resume it anew."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STREAMS = textwrap.dedent(
    """
    from emloop_ds import Shard

    def stream(shard=Shard(0, 1)):
        for number in shard.select(range(9)):
            yield {"number": [number], "pass": [shard.epoch]}
    """
)

READER = textwrap.dedent(
    """
    import json, os, sys
    from emloop_ds import StreamWrapper
    from resume_streams import stream

    KINDS = {
        "unbuffered": {},
        "buffered": {"buffer_size": 3},
        "workers": {"workers": 2},
        "unordered": {"workers": 2, "ordered": False},
        "dask": {"workers": 2, "engine": "dask"},
        "cached": {"cache": os.path.join(os.path.dirname(sys.argv[1]), "cache")},
        "shuffled": {"cache": os.path.join(os.path.dirname(sys.argv[1]), "cache"), "shuffle": True},
    }

    if __name__ == "__main__":
        state_file, kind, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
        wrapper = StreamWrapper(stream, epoch_size=4, **KINDS[kind])
        if os.path.exists(state_file):
            with open(state_file) as file:
                wrapper.load_state_dict(json.load(file))
        done = 0
        with wrapper:
            while done < total:
                for batch in wrapper:
                    # The batch is delivered once it is printed; the state is saved after it, atomically.
                    print(batch["pass"][0], batch["number"][0], flush=True)
                    with open(state_file + ".tmp", "w") as file:
                        json.dump(wrapper.state_dict(), file)
                    os.replace(state_file + ".tmp", state_file)
                    print("saved", flush=True)
                    sys.stdin.readline()  # the parent's go-ahead, so it kills at a known batch
                    done += 1
                    if done == total:
                        break
        wrapper.close()
    """
)


def _run_reader(script: Path, state: Path, kind: str, total: int, kill_after: int | None) -> list[str]:
    process = subprocess.Popen(
        [sys.executable, str(script), str(state), kind, str(total)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(script.parent), *sys.path])},
        cwd=script.parent,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    delivered: list[str] = []
    for line in process.stdout:
        if line.strip() == "saved":
            if kill_after is not None and len(delivered) == kill_after:
                process.send_signal(signal.SIGKILL)
                break
            process.stdin.write("\n")
            process.stdin.flush()
            continue
        delivered.append(line.strip())
    process.stdout.close()
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    process.wait(timeout=60)
    return delivered


def _has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "kills"),
    [
        ("unbuffered", 3),
        ("buffered", 3),
        ("workers", 2),
        ("unordered", 2),
        pytest.param("dask", 1, marks=pytest.mark.skipif(not _has_dask(), reason="needs the dask extra")),
        ("cached", 3),
        ("shuffled", 3),
    ],
)
def test_a_reader_killed_at_a_random_batch_resumes_in_a_new_process(tmp_path, kind, kills):
    """The batches before a SIGKILL plus those after a resume in a new process are the uninterrupted run's.

    Unordered, no batch is lost or repeated, whichever epoch it lands in. Cached runs write their cache in
    the first pass and read it after, so a kill can land in either (each run has its own cache folder).
    """
    (tmp_path / "resume_streams.py").write_text(STREAMS, encoding="utf-8")
    total = 30
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    script = tmp_path / "reader.py"
    script.write_text(READER, encoding="utf-8")
    reference = _run_reader(script, reference_dir / "state.json", kind, total, None)
    assert len(reference) == total
    for kill_after in sorted(random.sample(range(1, total), kills)):
        run_dir = tmp_path / f"killed-{kill_after}"
        run_dir.mkdir()
        state = run_dir / "state.json"
        head = _run_reader(script, state, kind, total, kill_after)
        tail = _run_reader(script, state, kind, total - kill_after, None)
        if kind == "unordered":  # which batches fill an epoch depends on timing; none is lost or repeated
            delivered = head + tail
            assert len(set(delivered)) == len(delivered) == total, f"killed after {kill_after} batches"
            for done_pass in ("0", "1"):  # 30 batches of passes of 9: the first two are complete
                assert sorted(line for line in delivered if line.split()[0] == done_pass) == sorted(
                    f"{done_pass} {number}" for number in range(9)
                )
        else:
            assert head + tail == reference, f"killed after {kill_after} batches"
