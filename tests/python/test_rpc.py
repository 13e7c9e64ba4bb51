"""rpc channels from Python through shmbusd: Client.open_server() / open_caller(), call(data,
timeout) answered by a server in another thread and in another process; and the failures a
caller must see: no server, a server killed while it holds the call, a reply that comes after
its caller gave up. A C++ server (shmbusctl serve) answers Python in test_interop.py."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest
from conftest import DEADLINE, Daemon, python_child, reaped, scaled

import shmbus


@pytest.fixture
def client(rpc_daemon: Daemon) -> Iterator[shmbus.Client]:
    with rpc_daemon.connect(name="pytest-rpc") as c:
        yield c


def echo_server(server: shmbus.Server, count: int, failures: list[BaseException]) -> None:
    """Answers `count` requests with b"re:" + the request (a thread's body)."""
    try:
        served = 0
        while served < count:
            for request in server.receive(16, timeout=DEADLINE):
                server.respond(request, b"re:" + request.data)
                served += 1
    except BaseException as e:  # noqa: BLE001 - reported to the test's thread
        failures.append(e)


def test_a_call_gets_the_reply_its_server_wrote(client: shmbus.Client) -> None:
    calls = scaled(500)
    failures: list[BaseException] = []
    with client.open_server("svc") as server, client.open_caller("svc") as caller:
        assert server.info.kind == "rpc"
        assert caller.channel == "svc"
        worker = threading.Thread(target=echo_server, args=(server, calls, failures))
        worker.start()
        replies = [caller.call(f"call {i}".encode(), timeout=DEADLINE) for i in range(calls)]
        worker.join(DEADLINE)
        assert not worker.is_alive()
        assert caller.in_flight == 0
    assert failures == []
    assert replies == [f"re:call {i}".encode() for i in range(calls)]
    assert repr(caller) == "<shmbus.Caller on 'svc', closed>"


def test_a_request_carries_its_id_and_accepts_any_bytes_like_data(
    client: shmbus.Client,
) -> None:
    failures: list[BaseException] = []
    with client.open_server("svc") as server, client.open_caller("svc") as caller:
        worker = threading.Thread(target=echo_server, args=(server, 2, failures))
        worker.start()
        assert caller.call(bytearray(b"ba"), timeout=DEADLINE) == b"re:ba"
        assert caller.call(memoryview(b"xxmv")[2:], timeout=DEADLINE) == b"re:mv"
        worker.join(DEADLINE)
    assert failures == []


def test_a_call_without_a_server_fails_at_once_unless_the_caller_waits(
    client: shmbus.Client,
) -> None:
    with client.open_caller("svc") as caller:
        with pytest.raises(shmbus.NotFoundError, match="no server is attached to 'svc'"):
            caller.call(b"anyone?", timeout=DEADLINE)
    with client.open_caller("svc", wait_for_server=True) as patient:
        with pytest.raises(shmbus.TimeoutError):
            patient.call(b"anyone?", timeout=0.05)
        assert patient.in_flight == 0  # given up, not left in flight


def test_a_reply_after_its_caller_gave_up_is_lost_to_the_server(client: shmbus.Client) -> None:
    with client.open_server("svc") as server, client.open_caller("svc") as caller:
        taken: list[shmbus.Request] = []
        worker = threading.Thread(target=lambda: taken.extend(server.receive(1, DEADLINE)))
        worker.start()
        with pytest.raises(shmbus.TimeoutError):
            caller.call(b"slow", timeout=0.2)
        worker.join(DEADLINE)
        assert [r.data for r in taken] == [b"slow"]
        with pytest.raises(shmbus.LostError):
            server.respond(taken[0], b"too late")


def test_a_server_killed_while_it_holds_a_call_fails_it_with_closed(
    rpc_daemon: Daemon, client: shmbus.Client
) -> None:
    # A server in another process that takes one call, says so and never answers.
    code = (
        "import sys, shmbus\n"
        "c = shmbus.connect(sys.argv[1])\n"
        "s = c.open_server('svc')\n"
        "print('ready', flush=True)\n"
        "s.receive(1)\n"
        "print('taken', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with client.open_caller("svc", wait_for_server=True) as caller:
        child = python_child(code, str(rpc_daemon.socket), stdin=subprocess.PIPE)
        with reaped(child):
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            outcome: list[BaseException] = []

            def killer() -> None:
                assert child.stdout is not None
                if child.stdout.readline() == "taken\n":
                    os.kill(child.pid, signal.SIGKILL)

            watcher = threading.Thread(target=killer)
            watcher.start()
            try:
                caller.call(b"held", timeout=DEADLINE)
            except shmbus.Error as e:
                outcome.append(e)
            watcher.join(DEADLINE)
            assert [type(e) for e in outcome] == [shmbus.ClosedError]
            assert child.wait(DEADLINE) == -signal.SIGKILL
