"""A Python process killed mid-stream (SIGKILL) wedges nobody: the survivors keep their
stream, in order, and what the dead one held is reclaimed by shmbusd."""

from __future__ import annotations

import signal

from conftest import DEADLINE, Daemon, python_child, reaped, wait_until

import shmbus

PUBLISHER = """
import sys, shmbus
pub = shmbus.connect(sys.argv[1]).open_publisher("stream", wait="blocking")
print("publishing", flush=True)
i = 0
while True:
    pub.send(i.to_bytes(8, "little"), timeout=None)
    i += 1
"""

HOLDER = """
import sys, shmbus
sub = shmbus.connect(sys.argv[1]).open_subscriber("jobs", wait="blocking")
batch = sub.receive(4, timeout=60.0)
# Indexed, not iterated: iterating a batch to its end would release it.
print(" ".join(bytes(batch[i].data).decode() for i in range(len(batch))), flush=True)
sys.stdin.read()  # holds the batch until killed
"""


def test_a_publisher_killed_mid_stream_leaves_an_ordered_stream(
    daemon: Daemon, client: shmbus.Client
) -> None:
    sub = client.open_subscriber("stream", wait="blocking")
    expected = 0
    with reaped(python_child(PUBLISHER, str(daemon.socket))) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "publishing"
        while expected < 5000:
            for msg in sub.receive(64, timeout=DEADLINE):
                assert int.from_bytes(msg.data, "little") == expected
                expected += 1
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=DEADLINE)
    # The daemon reclaims the dead publisher (its reservation, if any, is abandoned) ...
    wait_until(lambda: client.channel_info("stream").stats.publishers == 0,
               "shmbusd reclaims the killed publisher")
    # ... and what it had published arrives, still in order, with no gap and no repeat.
    while True:
        try:
            batch = sub.receive(64, timeout=0)
        except shmbus.WouldBlockError:
            break
        for msg in batch:
            assert int.from_bytes(msg.data, "little") == expected
            expected += 1
    pub = client.open_publisher("stream")
    pub.send(b"after", timeout=DEADLINE)
    assert sub.receive_copy(timeout=DEADLINE).data == b"after"


def test_a_consumer_killed_holding_a_batch_gives_its_messages_to_the_others(
    daemon: Daemon, client: shmbus.Client
) -> None:
    pub = client.open_publisher("jobs")
    for i in range(4):
        pub.send(b"job %d" % i, timeout=DEADLINE)
    with reaped(python_child(HOLDER, str(daemon.socket), stdin=-1)) as child:
        assert child.stdout is not None
        held = child.stdout.readline().strip()
        assert held.startswith("job 0")  # it took jobs in place, and holds them
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=DEADLINE)
    sub = client.open_subscriber("jobs")
    got: list[bytes] = []
    while len(got) < 4:
        got += [bytes(m.data) for m in sub.receive(64, timeout=DEADLINE)]
    assert got == [b"job %d" % i for i in range(4)]
    assert client.channel_info("jobs").stats.redelivered == len(held.split(" job "))
