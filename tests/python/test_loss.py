"""Loss on a drop-policy channel is reported, never silent: counted before a batch
(lost_before), in all (Subscriber.lost), and as LostError when a batch held is overwritten."""

from __future__ import annotations

from conftest import DEADLINE

import pytest

import shmbus


def test_messages_overwritten_before_a_receive_are_counted(client: shmbus.Client) -> None:
    sub = client.open_subscriber("drops")
    pub = client.open_publisher("drops")
    for i in range(10):  # a ring of 4: the first ones are overwritten
        pub.send(i.to_bytes(8, "little"), timeout=0)
    got: list[int] = []
    lost_before = 0
    while len(got) + lost_before < 10:
        with sub.receive(64, timeout=DEADLINE) as batch:
            lost_before += batch.lost_before
            got += [int.from_bytes(m.data, "little") for m in batch]
    assert lost_before > 0
    assert got == list(range(10 - len(got), 10))  # the newest, in order
    assert sub.lost == lost_before


def test_the_copying_read_reports_the_loss_before_the_message(client: shmbus.Client) -> None:
    sub = client.open_subscriber("drops")
    pub = client.open_publisher("drops")
    for i in range(7):
        pub.send(bytes([i]), timeout=0)
    first = sub.receive_copy(timeout=DEADLINE)
    assert first.lost_before == first.data[0]
    assert first.lost_before > 0
    assert sub.lost == first.lost_before


def test_a_batch_overwritten_while_held_raises_lost_error_on_release(
    client: shmbus.Client,
) -> None:
    sub = client.open_subscriber("drops")
    pub = client.open_publisher("drops")
    pub.send(b"held", timeout=0)
    batch = sub.receive(1, timeout=DEADLINE)
    assert len(batch) == 1
    for i in range(8):  # two laps over the slot held
        pub.send(b"over %d" % i, timeout=0)
    with pytest.raises(shmbus.LostError) as e:
        batch.release()
    assert e.value.lost == 1
    assert e.value.name == "lost"
    assert batch.released
    assert sub.lost >= 1


def test_the_end_of_iteration_raises_lost_error_when_the_batch_was_overwritten(
    client: shmbus.Client,
) -> None:
    sub = client.open_subscriber("drops")
    pub = client.open_publisher("drops")
    pub.send(b"held", timeout=0)
    seen = []
    with pytest.raises(shmbus.LostError):
        for msg in sub.receive(1, timeout=DEADLINE):
            seen.append(msg.sequence)
            for i in range(8):
                pub.send(b"over %d" % i, timeout=0)
    assert seen == [0]
