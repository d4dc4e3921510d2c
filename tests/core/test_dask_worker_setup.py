"""Test the set-up of the Dask engine's LocalCluster workers against a real LocalCluster."""

from __future__ import annotations

import pytest

from emloop_ds.core.stream.dask.cluster import open_session
from emloop_ds.core.stream.dask.worker_setup import ACTOR_KEY_PREFIX

pytest.importorskip("distributed")


def test_a_call_that_reaches_a_released_actor_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    # The race a Ctrl-C can lose: a call arrives after the worker freed the actor. Asking a worker of our
    # LocalCluster for an actor it does not hold takes the same path; its log goes to this process's stderr.
    session = open_session(None, 1, 20)
    try:
        client = session.client
        (address,) = client.ncores()

        def call(key: str) -> str:
            with pytest.raises(KeyError, match=key):  # the caller still hears of it
                client.sync(lambda: client.rpc(address).actor_execute(actor=key, function="produce"))
            return capfd.readouterr().err

        assert "Traceback" not in call(f"{ACTOR_KEY_PREFIX}0-released-0")
        # Only our actors' records are dropped: the worker logs someone else's, where this test sees it.
        assert "KeyError: 'someone-elses-actor'" in call("someone-elses-actor")
    finally:
        session.close()
