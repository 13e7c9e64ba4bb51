"""Blocking calls release the GIL, so other Python threads run while one waits, and a
blocking receive in the main thread is interrupted by Ctrl-C (SIGINT)."""

from __future__ import annotations

import signal
import threading

from conftest import DEADLINE, Daemon, python_child, reaped, wait_until

import shmbus


def test_another_thread_runs_while_one_waits_in_receive(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")
    pub = client.open_publisher("jobs")
    got: list[bytes] = []
    failure: list[BaseException] = []

    def reader() -> None:
        try:
            got.append(sub.receive_copy(timeout=None).data)
        except BaseException as e:  # reported by the main thread
            failure.append(e)

    t = threading.Thread(target=reader)
    t.start()
    # The reader sleeps in the library; this thread runs (it holds the GIL) and wakes it.
    wait_until(lambda: client.channel_info("jobs").stats.data_waits >= 1,
               "the reader thread waits in receive")
    pub.send(b"wake up", timeout=DEADLINE)
    t.join(DEADLINE)
    assert not t.is_alive()
    assert not failure, failure
    assert got == [b"wake up"]


def test_a_second_thread_on_a_busy_endpoint_gets_runtime_error(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")
    pub = client.open_publisher("jobs")
    t = threading.Thread(target=lambda: sub.receive_copy(timeout=DEADLINE))
    t.start()
    try:
        wait_until(lambda: client.channel_info("jobs").stats.data_waits >= 1,
                   "the reader thread waits in receive")
        try:
            sub.receive(timeout=0)
        except RuntimeError as e:
            assert "another thread" in str(e)
        else:
            raise AssertionError("a second thread entered the busy subscriber")
    finally:
        pub.send(b"release the reader", timeout=DEADLINE)
        t.join(DEADLINE)
    assert not t.is_alive()


CHILD = """
import sys, shmbus
sub = shmbus.connect(sys.argv[1]).open_subscriber("jobs", wait="blocking")
print("subscribed", flush=True)
try:
    sub.receive(timeout=None)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
print("received?!", flush=True)
"""


def test_ctrl_c_interrupts_a_blocking_receive(daemon: Daemon, client: shmbus.Client) -> None:
    with reaped(python_child(CHILD, str(daemon.socket))) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "subscribed"
        # The child sleeps in the library's futex wait, not somewhere before it.
        wait_until(lambda: client.channel_info("jobs").stats.data_waits >= 1,
                   "the child waits in receive")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 3, err
    assert out.strip() == "interrupted"
    # Nothing was taken from the channel on the way out.
    assert client.channel_info("jobs").stats.consumed == 0
