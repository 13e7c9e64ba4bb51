"""asyncio: receive_async(), reserve_async() and send_async() await the endpoint's wait handle
on the event loop. Thousands of messages pass through one loop and through a loop fed by
another process, none lost and in order; a cancelled or timed-out wait takes nothing and
leaves no reader on the loop; one task at a time waits on an endpoint."""

from __future__ import annotations

import asyncio
import builtins
import struct

import pytest
from conftest import DEADLINE, Daemon, python_child, reaped, scaled

import shmbus

PACK = struct.Struct("<Q")


async def _until_waiting(endpoint: shmbus.Subscriber | shmbus.Publisher) -> None:
    """Lets the loop run until a task awaits `endpoint`'s wait handle."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not endpoint._waiting:
        assert loop.time() < end, "no task started waiting on the endpoint"
        await asyncio.sleep(0)


def test_thousands_of_messages_pass_through_one_loop_in_order(client: shmbus.Client) -> None:
    # "stream" holds 1024 messages: the publisher task waits for room many times over, the
    # subscriber task for messages.
    count = scaled(20_000)
    sub = client.open_subscriber("stream", wait="blocking")
    pub = client.open_publisher("stream", wait="blocking")

    async def produce() -> None:
        i = 0
        while i < count:
            if i % 3 == 0:
                await pub.send_async(PACK.pack(i), timeout=DEADLINE)
                i += 1
                continue
            with await pub.reserve_async(min(16, count - i), timeout=DEADLINE) as r:
                for k in range(len(r)):
                    r[k][:8] = PACK.pack(i + k)
                    r.set_length(k, 8)
                i += len(r)

    async def consume() -> list[int]:
        values: list[int] = []
        sequence = None
        while len(values) < count:
            for msg in await sub.receive_async(64, timeout=DEADLINE):
                if sequence is not None:
                    assert msg.sequence == sequence + 1
                sequence = msg.sequence
                values.append(PACK.unpack_from(msg.data)[0])
        return values

    async def both() -> list[int]:
        _, values = await asyncio.gather(produce(), consume())
        return values

    assert asyncio.run(both()) == list(range(count))
    assert sub.lost == 0


PUBLISHER = """
import struct, sys, shmbus
count = int(sys.argv[2])
pub = shmbus.connect(sys.argv[1]).open_publisher("stream", wait="blocking")
for i in range(count):
    pub.send(struct.pack("<Q", i), timeout=60.0)
"""


def test_a_loop_receives_every_message_of_another_process(daemon: Daemon,
                                                         client: shmbus.Client) -> None:
    count = scaled(20_000)
    sub = client.open_subscriber("stream", wait="blocking")

    async def consume() -> tuple[list[int], int]:
        values: list[int] = []
        wakeups = 0
        while len(values) < count:
            batch = await sub.receive_async(64, timeout=DEADLINE)
            wakeups += 1
            for msg in batch:
                values.append(PACK.unpack_from(msg.data)[0])
        return values, wakeups

    with reaped(python_child(PUBLISHER, str(daemon.socket), str(count))) as child:
        values, wakeups = asyncio.run(consume())
        _, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    assert values == list(range(count))
    assert 1 <= wakeups <= count
    assert sub.lost == 0


def test_a_cancelled_receive_takes_nothing_and_leaves_no_reader(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")
    pub = client.open_publisher("jobs")

    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(sub.receive_async(timeout=None))
        await _until_waiting(sub)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not sub._waiting
        assert not loop.remove_reader(sub.wait_handle()), "the cancelled wait left its reader"
        pub.send(b"after the cancel", timeout=DEADLINE)
        batch = await sub.receive_async(timeout=DEADLINE)
        with batch:
            assert len(batch) == 1
            assert batch[0].sequence == 0  # the cancelled wait took nothing
            return bytes(batch[0].data)

    assert asyncio.run(run()) == b"after the cancel"


def test_wait_for_around_receive_async_cancels_cleanly(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")
    pub = client.open_publisher("jobs")

    async def run() -> list[bytes]:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sub.receive_async(), 0.05)
        assert not sub._waiting
        pub.send(b"one", timeout=DEADLINE)
        pub.send(b"two", timeout=DEADLINE)
        got: list[bytes] = []
        while len(got) < 2:
            for msg in await sub.receive_async(timeout=DEADLINE):
                got.append(bytes(msg.data))
        return got

    assert asyncio.run(run()) == [b"one", b"two"]


def test_receive_async_times_out_with_the_shmbus_timeout_error(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")

    async def run() -> None:
        with pytest.raises(shmbus.TimeoutError) as caught:
            await sub.receive_async(timeout=0.05)
        assert caught.value.name == "timed_out"
        assert caught.value.code == 2
        assert "'jobs'" in caught.value.message
        assert isinstance(caught.value, builtins.TimeoutError)
        assert not sub._waiting

    asyncio.run(run())


def test_send_async_waits_for_room_in_a_full_ring(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")
    pub = client.open_publisher("jobs")
    sent = 0
    while pub._poll_send(PACK.pack(sent)):  # fill the 64 slots
        sent += 1
    assert sent == 64

    async def run() -> list[int]:
        sender = asyncio.create_task(pub.send_async(PACK.pack(sent), timeout=DEADLINE))
        await _until_waiting(pub)
        assert not sender.done()
        values: list[int] = []
        for msg in await sub.receive_async(1, timeout=DEADLINE):  # frees one slot
            values.append(PACK.unpack_from(msg.data)[0])
        await asyncio.wait_for(sender, DEADLINE)
        while len(values) < sent + 1:
            for msg in await sub.receive_async(64, timeout=DEADLINE):
                values.append(PACK.unpack_from(msg.data)[0])
        return values

    assert asyncio.run(run()) == list(range(sent + 1))


def test_one_task_at_a_time_waits_on_an_endpoint(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs", wait="blocking")

    async def run() -> None:
        first = asyncio.create_task(sub.receive_async(timeout=None))
        await _until_waiting(sub)
        with pytest.raises(RuntimeError, match="another task is already waiting"):
            await sub.receive_async(timeout=0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(run())


def test_a_bad_timeout_is_refused_before_waiting(client: shmbus.Client) -> None:
    sub = client.open_subscriber("jobs")

    async def run() -> None:
        with pytest.raises(ValueError, match="timeout"):
            await sub.receive_async(timeout=-1)
        with pytest.raises(TypeError, match="timeout"):
            await sub.receive_async(timeout="soon")  # type: ignore[arg-type]

    asyncio.run(run())
