"""A million messages (SHMBUS_TEST_SCALE scales it) from one Python process to another
through a queue, received in place in batches: none lost, none twice, all in order."""

from __future__ import annotations

import struct

from conftest import DEADLINE, Daemon, python_child, reaped, scaled

import shmbus

PUBLISHER = """
import struct, sys, shmbus
count = int(sys.argv[2])
pub = shmbus.connect(sys.argv[1]).open_publisher("stream", wait="blocking")
pack = struct.Struct("<Q").pack
i = 0
while i < count:
    with pub.reserve(min(64, count - i), timeout=60.0) as r:
        for k in range(len(r)):
            r[k][:8] = pack(i + k)
            r.set_length(k, 8)
        i += len(r)
pub.send(b"end", timeout=60.0)
"""


def test_a_million_messages_arrive_in_order(daemon: Daemon, client: shmbus.Client) -> None:
    count = scaled(1_000_000)
    sub = client.open_subscriber("stream", wait="blocking")
    unpack = struct.Struct("<Q").unpack_from
    expected = 0
    sequence = None
    with reaped(python_child(PUBLISHER, str(daemon.socket), str(count))) as child:
        done = False
        while not done:
            for msg in sub.receive(64, timeout=DEADLINE):
                if sequence is not None:
                    assert msg.sequence == sequence + 1
                sequence = msg.sequence
                if len(msg) == 3:
                    assert bytes(msg.data) == b"end"
                    done = True
                    break
                (value,) = unpack(msg.data)
                assert value == expected
                expected += 1
        _, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    assert expected == count
    assert sub.lost == 0
