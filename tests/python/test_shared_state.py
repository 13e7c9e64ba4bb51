"""Blackboard and counters channels from Python: elements written and read whole, straight
into the caller's buffer, ranges and read-modify-write; every counter operation, shared
between processes without a lost increment; the errors of readers, bad indices and closed
endpoints; and a C++ program (shmbusctl get, set and counters) on the other side."""

from __future__ import annotations

import array
import json
import os
import subprocess

import pytest
from conftest import DEADLINE, Daemon, python_child, reaped, scaled

import shmbus


def test_an_element_written_by_one_endpoint_is_read_whole_by_another(
    client: shmbus.Client,
) -> None:
    writer = client.open_blackboard("board", role="writer")
    reader = client.open_blackboard("board")
    assert (len(reader), reader.element_size, reader.role) == (8, 32, "reader")
    assert reader.info.kind == "blackboard"
    writer.write(3, b"hello")
    assert reader.read(3) == b"hello" + bytes(27)  # the rest of the element became zeros
    before = reader.read_into(3, bytearray(32))
    writer.write(3, memoryview(b"xxworld")[2:])  # any bytes-like object
    buffer = bytearray(40)  # larger than an element: only element_size bytes are written
    assert reader.read_into(3, buffer) == before + 1  # the version counts writes
    assert bytes(buffer[:5]) == b"world" and buffer[32:] == bytearray(8)


def test_read_into_fills_an_array_in_place(client: shmbus.Client) -> None:
    writer = client.open_blackboard("board", role="writer")
    reader = client.open_blackboard("board")
    writer.write(0, array.array("d", [1.5, 2.5, 3.5, 4.5]))
    values = array.array("d", [0.0] * 4)
    reader.read_into(0, values)
    assert list(values) == [1.5, 2.5, 3.5, 4.5]


def test_ranges_are_written_and_read_element_by_element(client: shmbus.Client) -> None:
    writer = client.open_blackboard("board", role="writer")
    reader = client.open_blackboard("board")
    writer.write_range(5, bytes([1]) * 32 + bytes([2]) * 32 + bytes([3]) * 32)
    got = reader.read_range(5, 3)
    assert [got[i * 32] for i in range(3)] == [1, 2, 3]
    with pytest.raises(shmbus.InvalidArgumentError):
        writer.write_range(0, bytes(40))  # not a whole number of elements
    with pytest.raises(shmbus.InvalidArgumentError):
        reader.read_range(6, 3)  # past the last element


def test_update_changes_an_element_in_one_write(client: shmbus.Client) -> None:
    writer = client.open_blackboard("board", role="writer")
    writer.write(1, b"abc")

    def upper(element: bytearray) -> None:
        element[:3] = element[:3].upper()

    writer.update(1, upper)
    assert writer.read(1)[:3] == b"ABC"


def test_an_update_whose_function_raises_leaves_the_element_as_it_was(
    client: shmbus.Client,
) -> None:
    writer = client.open_blackboard("board", role="writer")
    writer.write(2, b"keep")

    def half_done(element: bytearray) -> None:
        element[0:4] = b"lost"
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        writer.update(2, half_done)
    assert writer.read(2)[:4] == b"keep"
    with pytest.raises(ValueError, match="size"):
        writer.update(2, lambda element: element.extend(b"more"))
    assert writer.read(2)[:4] == b"keep"


def test_blackboard_errors_name_what_was_wrong(client: shmbus.Client) -> None:
    reader = client.open_blackboard("board")
    with pytest.raises(shmbus.PermissionDeniedError):
        reader.write(0, b"x")
    with pytest.raises(shmbus.InvalidArgumentError):
        reader.read(8)
    with pytest.raises(IndexError):
        reader.read(-1)
    with pytest.raises(shmbus.InvalidArgumentError):
        reader.read_into(0, bytearray(8))  # smaller than an element
    with pytest.raises(TypeError):
        reader.read_into(0, b"read-only")
    writer = client.open_blackboard("board", role="writer")
    with pytest.raises(shmbus.MessageTooLargeError, match="32 bytes"):
        writer.write(0, bytes(33))
    with pytest.raises(ValueError, match="role"):
        client.open_blackboard("board", role="owner")
    with pytest.raises(shmbus.InvalidArgumentError):
        client.open_blackboard("stats")  # a counters channel
    with pytest.raises(shmbus.NotFoundError):
        client.open_blackboard("nosuch")
    reader.close()
    with pytest.raises(shmbus.ClosedError):
        reader.read(0)


def test_every_counter_operation(client: shmbus.Client) -> None:
    writer = client.open_counters("stats", role="writer")
    reader = client.open_counters("stats")
    assert writer.capacity == 8
    hits = writer.cell("hits")
    seen = reader.cell("hits")
    assert (hits.name, hits.index) == ("hits", seen.index)
    assert hits.fetch_add() == 0
    assert hits.fetch_add(4) == 1
    assert hits.fetch_sub() == 5
    assert seen.load() == 4 and seen.value == 4
    assert hits.fetch_max(10) == 4
    assert hits.fetch_max(3) == 10
    assert hits.compare_exchange(7, 20) == (False, 10)
    assert hits.compare_exchange(10, 20) == (True, 10)
    hits.store(2**64 - 1)
    assert hits.fetch_add(2) == 2**64 - 1  # wraps
    assert seen.load() == 1
    writer.cell("misses")
    assert reader.list() == [
        shmbus.CounterValue("hits", 1, hits.index),
        shmbus.CounterValue("misses", 0, writer.cell("misses").index),
    ]


def test_counter_errors_name_what_was_wrong(client: shmbus.Client) -> None:
    writer = client.open_counters("stats", role="writer")
    reader = client.open_counters("stats")
    with pytest.raises(shmbus.NotFoundError, match="absent"):
        reader.cell("absent")
    with pytest.raises(shmbus.InvalidArgumentError):
        writer.cell("no spaces")
    writer.cell("cell")
    seen = reader.cell("cell")
    with pytest.raises(shmbus.PermissionDeniedError, match="reading"):
        seen.fetch_add(1)
    with pytest.raises(shmbus.PermissionDeniedError):
        seen.store(1)
    cell = writer.cell("cell")
    with pytest.raises(ValueError):
        cell.store(-1)
    with pytest.raises(ValueError):
        cell.fetch_add(2**64)
    writer.close()
    with pytest.raises(shmbus.ClosedError, match="closed"):
        cell.load()


INCREMENTER = """
import sys, shmbus
cell = shmbus.connect(sys.argv[1]).open_counters("stats", role="writer").cell("shared")
for _ in range(int(sys.argv[2])):
    cell.fetch_add(1)
"""


def test_two_processes_add_to_one_counter_without_losing_an_increment(
    daemon: Daemon, client: shmbus.Client
) -> None:
    each = scaled(50_000)
    cell = client.open_counters("stats", role="writer").cell("shared")
    with reaped(python_child(INCREMENTER, str(daemon.socket), str(each))) as child:
        for _ in range(each):
            cell.fetch_add(1)
        _, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    assert cell.load() == 2 * each


def shmbusctl(daemon: Daemon, *args: str) -> str:
    tool = os.environ.get("SHMBUSCTL")
    if not tool:
        pytest.skip("shmbusctl (the C++ peer) is not built")
    done = subprocess.run([tool, "--socket", str(daemon.socket), *args], capture_output=True,
                          text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_cpp_program_reads_what_python_writes_and_python_what_it_writes(
    daemon: Daemon, client: shmbus.Client
) -> None:
    board = client.open_blackboard("board", role="writer")
    board.write(4, b"from python")
    counters = client.open_counters("stats", role="writer")
    counters.cell("python").store(31337)
    got = json.loads(shmbusctl(daemon, "--json", "get", "board", "4"))
    assert got["text"].startswith("from python")
    listed = json.loads(shmbusctl(daemon, "--json", "counters", "stats"))
    assert {"name": "python", "value": 31337, "index": 0} in listed["counters"]
    shmbusctl(daemon, "set", "board", "5", "from c++")
    assert board.read(5).rstrip(b"\0") == b"from c++"
