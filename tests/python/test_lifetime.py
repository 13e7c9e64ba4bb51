"""Zero-copy memory is reachable only while its batch is held: a memoryview used after the
release raises instead of reading a slot that may hold another message, and a release that
would leave a view behind is refused."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from conftest import DEADLINE

import shmbus

Jobs = tuple[shmbus.Publisher, shmbus.Subscriber]


@pytest.fixture
def jobs(client: shmbus.Client) -> Iterator[Jobs]:
    """A publisher and a subscriber on the queue 'jobs'."""
    yield client.open_publisher("jobs"), client.open_subscriber("jobs")


def test_a_memoryview_used_after_release_raises(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"short-lived", timeout=DEADLINE)
    kept = []
    for msg in sub.receive(1, timeout=DEADLINE):
        kept.append((msg, msg.data))
        assert bytes(msg.data) == b"short-lived"
    msg, view = kept[0]
    with pytest.raises(ValueError, match="released"):
        view[0]
    with pytest.raises(ValueError, match="released"):
        bytes(view)
    with pytest.raises(BufferError, match="released"):
        bytes(msg)  # type: ignore[call-overload]  # the message's own buffer protocol
    with pytest.raises(BufferError):
        memoryview(msg)  # type: ignore[arg-type]  # typeshed: no __buffer__ before 3.12
    assert msg.sequence == 0  # what is not in the slot stays readable


def test_a_reservation_view_used_after_commit_raises(jobs: Jobs) -> None:
    pub, _ = jobs
    with pub.reserve(1, timeout=DEADLINE) as r:
        view = r[0]
        view[:2] = b"ok"
        r.set_length(0, 2)
    with pytest.raises(ValueError, match="released"):
        view[:2] = b"no"
    r2 = pub.reserve(1, timeout=DEADLINE)
    other = r2[0]
    r2.abandon()
    with pytest.raises(ValueError, match="released"):
        other[0] = 1


def test_a_slice_kept_past_the_batch_refuses_the_release_until_dropped(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"0123456789", timeout=DEADLINE)
    pub.send(b"next", timeout=DEADLINE)
    batch = sub.receive(1, timeout=DEADLINE)
    part = batch[0].data[2:5]
    with pytest.raises(BufferError, match="still viewed"):
        batch.release()
    assert not batch.released
    assert bytes(part) == b"234"  # still held, so still the message
    with pytest.raises(shmbus.InvalidArgumentError):
        sub.receive(1, timeout=0)
    del part
    batch.release()
    assert batch.released
    assert sub.receive_copy(timeout=DEADLINE).data == b"next"


def test_a_batch_dropped_with_a_live_slice_is_released_once_the_slice_goes(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"first", timeout=DEADLINE)
    pub.send(b"second", timeout=DEADLINE)
    batch = sub.receive(1, timeout=DEADLINE)
    part = batch[0].data[:3]
    del batch  # its release is refused while `part` lives: the next receive tries again
    gc.collect()
    with pytest.raises(BufferError, match="still viewed"):
        sub.receive(1, timeout=0)
    assert bytes(part) == b"fir"
    del part
    assert sub.receive_copy(timeout=DEADLINE).data == b"second"


def test_a_message_of_a_batch_that_died_cannot_be_viewed(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"gone", timeout=DEADLINE)
    msg = sub.receive(1, timeout=DEADLINE)[0]  # the batch is released as it dies
    with pytest.raises(BufferError, match="released"):
        msg.data
    assert msg.sequence == 0


def test_a_view_of_the_view_refuses_the_release(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"abcd", timeout=DEADLINE)
    batch = sub.receive(1, timeout=DEADLINE)
    nested = memoryview(batch[0].data)  # an export of the binding's memoryview itself
    with pytest.raises(BufferError):
        batch.release()
    nested.release()
    batch.release()


def test_close_refuses_while_a_view_lives_and_works_after(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"held", timeout=DEADLINE)
    batch = sub.receive(1, timeout=DEADLINE)
    part = batch[0].data[:2]
    with pytest.raises(BufferError):
        sub.close()
    assert not sub.closed
    del part
    sub.close()
    assert sub.closed
    assert batch.released


def test_a_subscriber_view_is_read_only(jobs: Jobs) -> None:
    pub, sub = jobs
    pub.send(b"ro", timeout=DEADLINE)
    with sub.receive(1, timeout=DEADLINE) as batch:
        with pytest.raises(TypeError):
            batch[0].data[0] = 0


def test_a_batch_dropped_while_a_view_of_its_view_lived_is_released_by_the_next_receive(
    jobs: Jobs,
) -> None:
    pub, sub = jobs
    pub.send(b"first", timeout=DEADLINE)
    pub.send(b"second", timeout=DEADLINE)
    batch = sub.receive(1, timeout=DEADLINE)
    nested = memoryview(batch[0].data)  # holds the binding's view, which holds the message
    del batch
    gc.collect()
    assert bytes(nested) == b"first"
    nested.release()
    # Only the binding's own view keeps the message now: the next call releases both.
    assert sub.receive_copy(timeout=DEADLINE).data == b"second"
