"""connect() waits for a daemon that is not listening yet when asked to, says so once, and
that wait is interrupted by Ctrl-C like every blocking call."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from conftest import CHANNELS, DEADLINE, Daemon, python_child, reaped

CHILD = """
import sys, shmbus
wait = None if sys.argv[2] == "forever" else float(sys.argv[2])
try:
    client = shmbus.connect(sys.argv[1], wait_for_daemon=wait)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
print("connected", len(client.list_channels()), flush=True)
"""


@pytest.fixture
def later_daemon() -> Iterator[Daemon]:
    """A daemon configured but not started: the test starts it."""
    d = Daemon(CHANNELS)
    try:
        yield d
        if d.process is not None:
            assert d.stop() == 0, d.stderr()
    finally:
        d.cleanup()


def test_connect_waits_for_a_daemon_started_later(later_daemon: Daemon) -> None:
    with reaped(python_child(CHILD, str(later_daemon.socket), str(DEADLINE))) as child:
        assert child.stderr is not None
        waiting = child.stderr.readline()
        assert "waiting for shmbusd" in waiting
        assert str(later_daemon.socket) in waiting
        later_daemon.start()
        out, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    assert out.strip() == f"connected {len(CHANNELS)}"


def test_without_a_wait_connect_fails_at_once(later_daemon: Daemon) -> None:
    with reaped(python_child(CHILD, str(later_daemon.socket), "0")) as child:
        _, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 1
    assert "shmbus.NotFoundError" in err
    assert "waiting" not in err


def test_ctrl_c_interrupts_a_connect_waiting_for_ever(later_daemon: Daemon) -> None:
    with reaped(python_child(CHILD, str(later_daemon.socket), "forever")) as child:
        assert child.stderr is not None
        assert "waiting for shmbusd" in child.stderr.readline()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 3, err
    assert out.strip() == "interrupted"
