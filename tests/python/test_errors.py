"""Failures become exceptions of the class of their code, carrying the Errc name and the
library's message; timeouts wait as long as asked, and not for ever."""

from __future__ import annotations

import builtins
import time

import pytest
from conftest import DEADLINE, Daemon

import shmbus


def test_no_daemon_is_a_not_found_error_naming_the_socket(daemon: Daemon) -> None:
    missing = str(daemon.dir / "nobody.sock")
    with pytest.raises(shmbus.NotFoundError) as e:
        shmbus.connect(missing)
    assert e.value.name == "not_found"
    assert e.value.code == 10
    assert missing in e.value.message
    assert isinstance(e.value, shmbus.Error)


def test_an_unknown_channel_is_a_not_found_error_naming_it(client: shmbus.Client) -> None:
    with pytest.raises(shmbus.NotFoundError) as e:
        client.open_subscriber("no-such-channel")
    assert "no-such-channel" in str(e.value)
    assert e.value.name == "not_found"
    with pytest.raises(shmbus.NotFoundError):
        client.channel_info("no-such-channel")


def test_a_message_larger_than_the_slot_is_refused_naming_both_sizes(
    client: shmbus.Client,
) -> None:
    pub = client.open_publisher("jobs")
    with pytest.raises(shmbus.MessageTooLargeError) as e:
        pub.send(b"x" * 129, timeout=0)
    assert "129" in e.value.message and "128" in e.value.message
    assert isinstance(e.value, ValueError)
    with pub.reserve(1, timeout=DEADLINE) as r:
        with pytest.raises(shmbus.MessageTooLargeError):
            r.set_length(0, 129)
        r.set_length(0, 128)


def test_a_reservation_with_a_slot_of_no_length_is_not_committed(client: shmbus.Client) -> None:
    pub = client.open_publisher("jobs")
    sub = client.open_subscriber("jobs")
    with pytest.raises(shmbus.InvalidArgumentError) as e:
        with pub.reserve(1, timeout=DEADLINE):
            pass
    assert "set_length" in e.value.message
    # Nothing was published, and the publisher can reserve again.
    with pytest.raises(shmbus.WouldBlockError):
        sub.receive(timeout=0)
    pub.send(b"after", timeout=DEADLINE)
    assert sub.receive_copy(timeout=DEADLINE).data == b"after"


def test_an_exception_in_the_with_block_abandons_the_reservation(client: shmbus.Client) -> None:
    pub = client.open_publisher("jobs")
    sub = client.open_subscriber("jobs")
    with pytest.raises(KeyError):
        with pub.reserve(1, timeout=DEADLINE) as r:
            r.set_length(0, 1)
            raise KeyError("the application failed")
    with pytest.raises(shmbus.WouldBlockError):
        sub.receive(timeout=0)
    assert client.channel_info("jobs").stats.abandoned == 1


def test_a_second_batch_before_the_first_is_released_is_refused(client: shmbus.Client) -> None:
    pub = client.open_publisher("jobs")
    sub = client.open_subscriber("jobs")
    pub.send(b"one", timeout=DEADLINE)
    pub.send(b"two", timeout=DEADLINE)
    batch = sub.receive(1, timeout=DEADLINE)
    with pytest.raises(shmbus.InvalidArgumentError) as e:
        sub.receive(1, timeout=DEADLINE)
    assert "not released" in e.value.message
    batch.release()
    assert [bytes(m.data) for m in sub.receive(1, timeout=DEADLINE)] == [b"two"]


def test_receive_with_timeout_zero_tries_once(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs")
    with pytest.raises(shmbus.WouldBlockError) as e:
        sub.receive(timeout=0)
    assert e.value.name == "would_block"
    with pytest.raises(shmbus.WouldBlockError):
        sub.receive_copy(timeout=0)


def test_receive_times_out_after_the_timeout_and_not_before(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs")
    start = time.monotonic()
    with pytest.raises(shmbus.TimeoutError) as e:
        sub.receive(timeout=0.3)
    assert time.monotonic() - start >= 0.3
    assert isinstance(e.value, builtins.TimeoutError)
    assert e.value.name == "timed_out"
    assert "'jobs'" in e.value.message


def test_send_on_a_full_ring_times_out(client: shmbus.Client) -> None:
    pub = client.open_publisher("news")
    sub = client.open_subscriber("news")  # holds the ring: block policy
    for i in range(8):
        pub.send(b"%d" % i, timeout=DEADLINE)
    with pytest.raises(shmbus.WouldBlockError):
        pub.send(b"full", timeout=0)
    start = time.monotonic()
    with pytest.raises(shmbus.TimeoutError):
        pub.send(b"full", timeout=0.2)
    assert time.monotonic() - start >= 0.2
    assert sub.receive_copy(timeout=0).data == b"0"


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("-inf")])
def test_a_negative_timeout_is_a_value_error(client: shmbus.Client, bad: float) -> None:
    sub = client.open_subscriber("jobs")
    with pytest.raises(ValueError, match="timeout"):
        sub.receive(timeout=bad)


def test_an_unknown_wait_mode_is_a_value_error(client: shmbus.Client) -> None:
    with pytest.raises(ValueError, match="wait"):
        client.open_subscriber("jobs", wait="sometimes")  # type: ignore[arg-type]


def test_a_closed_endpoint_raises_closed_error(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs")
    sub.close()
    assert sub.closed
    with pytest.raises(shmbus.ClosedError) as e:
        sub.receive(timeout=0)
    assert "'jobs'" in e.value.message
    client.close()
    with pytest.raises(shmbus.ClosedError):
        client.list_channels()
