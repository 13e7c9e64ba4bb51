"""Pool channels from Python: blocks filled in place, handed on by 16-byte handles through a
queue and adopted in another process; a stale handle refused; views that never outlive their
block; the errors of readers, an empty pool, foreign handles and released blocks."""

from __future__ import annotations

import gc

import pytest
from conftest import DEADLINE, Daemon, python_child, reaped, scaled

import shmbus


def test_a_block_handed_on_is_adopted_and_read_in_place(client: shmbus.Client) -> None:
    writer = client.open_pool("frames", role="writer")
    reader = client.open_pool("frames")
    assert (len(writer), writer.block_size, writer.role) == (4, 4096, "writer")
    assert reader.info.kind == "pool"
    block = writer.acquire(timeout=DEADLINE)
    assert (len(block), block.writable) == (4096, True)
    block.data[:5] = b"hello"
    handle = writer.hand_on(block)
    assert len(handle) == 16 and block.released
    with reader.adopt(handle) as seen:  # the with block releases it
        assert bytes(seen.data[:5]) == b"hello"
        assert not seen.writable
        with pytest.raises(TypeError):
            seen.data[0] = 0  # mapped read-only
    assert seen.released
    # The last reference went back: the block returned to the pool, its generation moved on.
    with pytest.raises(shmbus.NotFoundError) as stale:
        reader.adopt(handle)
    assert "stale" in stale.value.message
    with pytest.raises(shmbus.NotFoundError):
        reader.drop(handle)


def test_a_view_never_outlives_its_block(client: shmbus.Client) -> None:
    writer = client.open_pool("frames", role="writer")
    block = writer.acquire()
    view = block.data
    part = block.data[:8]  # a view of the view: the binding cannot release it
    with pytest.raises(BufferError):
        block.release()
    assert not block.released
    del part
    block.release()
    with pytest.raises(ValueError):
        view[0]  # released with the block
    with pytest.raises(BufferError):
        bytes(block)
    with pytest.raises(shmbus.InvalidArgumentError):
        block.release()


def test_a_dropped_block_goes_back_to_the_pool_at_once(client: shmbus.Client) -> None:
    writer = client.open_pool("frames", role="writer")
    gc.disable()  # no collection: the block must come back when its last reference goes
    try:
        for i in range(3 * len(writer)):
            block = writer.acquire(timeout=0)  # WouldBlockError if an earlier one leaked
            block.data[:1] = bytes([i])
            del block
    finally:
        gc.enable()


def test_shared_blocks_and_copies_count_references(client: shmbus.Client) -> None:
    writer = client.open_pool("frames", role="writer")
    reader = client.open_pool("frames")
    block = writer.acquire()
    kept = writer.share(block)  # the writer keeps its reference
    reader.adopt(kept).release()
    assert not block.released
    twice = writer.hand_on(block, copies=2)
    assert block.released
    first = reader.adopt(twice)
    with pytest.raises(shmbus.AlreadyExistsError):
        reader.adopt(twice)  # one endpoint holds a block once: drop the copy
    reader.drop(twice)
    first.release()
    assert client.channel_info("frames").stats.depth == 0  # the block is back in the pool


def test_pool_errors_name_what_was_wrong(client: shmbus.Client) -> None:
    writer = client.open_pool("frames", role="writer")
    reader = client.open_pool("frames")
    with pytest.raises(shmbus.PermissionDeniedError):
        reader.acquire()
    blocks = [writer.acquire() for _ in range(4)]
    with pytest.raises(shmbus.WouldBlockError) as empty:
        writer.acquire(timeout=0)
    assert "all 4 blocks are in use" in empty.value.message
    with pytest.raises(shmbus.TimeoutError):
        writer.acquire(timeout=0.01)
    handle = writer.hand_on(blocks.pop())
    with pytest.raises(ValueError):
        reader.adopt(handle[:8])  # not a handle
    foreign = bytearray(handle)
    foreign[0] ^= 0xFF  # another pool's creation id
    with pytest.raises(shmbus.InvalidArgumentError):
        reader.adopt(foreign)
    reader.drop(memoryview(handle))  # any bytes-like object
    with pytest.raises(shmbus.InvalidArgumentError):
        writer.hand_on(blocks[0], copies=0)
    released = blocks.pop()
    released.release()
    with pytest.raises(shmbus.InvalidArgumentError):
        writer.hand_on(released)
    with pytest.raises(TypeError):
        writer.hand_on(b"not a block")  # type: ignore[arg-type]
    with pytest.raises(shmbus.InvalidArgumentError):
        client.open_pool("jobs")  # a queue
    with pytest.raises(ValueError):
        client.open_pool("frames", role="owner")  # type: ignore[arg-type]


def test_blocks_outlive_their_closed_pool(client: shmbus.Client) -> None:
    writer = client.open_pool("frames", role="writer")
    block = writer.acquire()
    writer.close()
    with pytest.raises(shmbus.ClosedError):
        writer.acquire()
    block.data[:5] = b"still"
    assert bytes(block.data[:5]) == b"still"
    block.release()


SENDER = """
import sys, shmbus
client = shmbus.connect(sys.argv[1])
pool = client.open_pool("frames", role="writer")
handles = client.open_publisher("handles")
for i in range(int(sys.argv[2])):
    block = pool.acquire(timeout=60)  # waits for the reader to give one back
    text = f"block {i}".encode()
    block.data[: len(text)] = text
    handles.send(pool.hand_on(block), timeout=60)
"""


def test_blocks_travel_by_handle_between_processes(daemon: Daemon, client: shmbus.Client) -> None:
    count = scaled(500)  # many laps of a pool of 4 blocks
    reader = client.open_pool("frames")
    handles = client.open_subscriber("handles")
    with reaped(python_child(SENDER, str(daemon.socket), str(count))) as child:
        for i in range(count):
            for msg in handles.receive(1, timeout=DEADLINE):
                with reader.adopt(msg.data) as block:  # the handle, straight from the slot
                    text = f"block {i}".encode()
                    assert bytes(block.data[: len(text)]) == text
        _, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    assert client.channel_info("frames").stats.depth == 0  # every block back in the pool
