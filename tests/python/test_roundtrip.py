"""Messages through shmbusd from Python to Python, in place and copied, and what the daemon
lists."""

from __future__ import annotations

from conftest import CHANNELS, DEADLINE

import shmbus


def test_a_message_written_in_place_is_read_in_place(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs")
    pub = client.open_publisher("jobs")
    with pub.reserve(4, timeout=DEADLINE) as r:
        assert 1 <= len(r) <= 4
        assert r.capacity == 128
        for i in range(len(r)):
            payload = f"in place {r.sequence(i)}".encode()
            r[i][: len(payload)] = payload
            r.set_length(i, len(payload))
        reserved = [r.sequence(i) for i in range(len(r))]
    got: list[tuple[int, bytes]] = []
    while len(got) < len(reserved):
        for msg in sub.receive(64, timeout=DEADLINE):
            assert msg.data.readonly
            got.append((msg.sequence, bytes(msg.data)))
    assert got == [(s, f"in place {s}".encode()) for s in reserved]


def test_a_message_sent_by_copy_is_received_by_copy(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs")
    pub = client.open_publisher("jobs")
    pub.send(b"copied", timeout=DEADLINE)
    pub.send(bytearray(b"a bytearray"), timeout=DEADLINE)
    pub.send(memoryview(b"xx a memoryview")[3:], timeout=DEADLINE)
    first = sub.receive_copy(timeout=DEADLINE)
    assert first.data == b"copied"
    assert first.lost_before == 0
    second = sub.receive_copy(timeout=DEADLINE)
    assert (second.data, second.sequence) == (b"a bytearray", first.sequence + 1)
    assert sub.receive_copy(timeout=DEADLINE).data == b"a memoryview"


def test_a_copy_is_read_in_place_and_an_in_place_write_by_copy(client: shmbus.Client) -> None:
    sub = client.open_subscriber("news")
    pub = client.open_publisher("news")
    pub.send(b"by copy", timeout=DEADLINE)
    with sub.receive(1, timeout=DEADLINE) as batch:
        assert [bytes(m.data) for m in batch] == [b"by copy"]
    with pub.reserve(1, timeout=DEADLINE) as r:
        r[0][:8] = b"in place"
        r.set_length(0, 8)
    assert sub.receive_copy(timeout=DEADLINE).data == b"in place"


def test_the_channels_are_listed_with_their_geometry_and_counters(client: shmbus.Client) -> None:
    pub = client.open_publisher("news")
    pub.send(b"x", timeout=DEADLINE)
    channels = {c.info.name: c for c in client.list_channels()}
    assert set(channels) == {c.name for c in CHANNELS}
    news = client.channel_info("news")
    assert news.info == pub.info
    assert (news.info.kind, news.info.overflow, news.info.slot_size, news.info.slot_count) == (
        "broadcast",
        "block",
        256,
        8,
    )
    assert news.stats.published == 1
    assert news.stats.publishers == 1
    assert channels["drops"].info.overflow == "drop"
    assert channels["jobs"].info.kind == "queue"
    assert not news.dynamic
