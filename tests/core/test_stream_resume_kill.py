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

READER = textwrap.dedent(
    """
    import json, os, sys
    from emloop_ds import Shard, StreamWrapper

    def stream(shard=Shard(0, 1)):
        for number in shard.select(range(9)):
            yield {"number": [number], "pass": [shard.epoch]}

    state_file, kind, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    options = {"buffer_size": 3} if kind == "buffered" else {}
    wrapper = StreamWrapper(stream, epoch_size=4, **options)
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
    """
)


def _run_reader(script: Path, state: Path, kind: str, total: int, kill_after: int | None) -> list[str]:
    process = subprocess.Popen(
        [sys.executable, str(script), str(state), kind, str(total)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
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


@pytest.mark.parametrize("kind", ["unbuffered", "buffered"])
def test_a_reader_killed_at_a_random_batch_resumes_in_a_new_process(tmp_path, kind):
    script = tmp_path / "reader.py"
    script.write_text(READER, encoding="utf-8")
    total = 30
    reference = _run_reader(script, tmp_path / "reference.json", kind, total, None)
    assert len(reference) == total
    for kill_after in sorted(random.sample(range(1, total), 3)):
        state = tmp_path / f"state-{kill_after}.json"
        head = _run_reader(script, state, kind, total, kill_after)
        tail = _run_reader(script, state, kind, total - kill_after, None)
        assert head + tail == reference, f"killed after {kill_after} batches"
