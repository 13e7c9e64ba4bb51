"""Messages between Python and a C++ program through shmbusd, each way: shmbusctl (its `pub`
and `tail`, on the C++ API) is the C++ side; the complete example of docs/python.md talking to
it; and a Python call answered by `shmbusctl serve`. Registered only when the tools are built."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import DEADLINE, Daemon, doc_example, reaped, required_env, wait_until

import shmbus


def shmbusctl() -> str:
    return required_env("SHMBUSCTL")


def test_a_cpp_program_receives_what_python_publishes(
    daemon: Daemon, client: shmbus.Client
) -> None:
    tail = subprocess.Popen(
        [shmbusctl(), "--socket", str(daemon.socket), "tail", "interop", "--count", "2",
         "--timeout", str(int(DEADLINE))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(tail):
        wait_until(lambda: client.channel_info("interop").stats.subscribers == 1,
                   "shmbusctl tail subscribes to 'interop'")
        pub = client.open_publisher("interop")
        with pub.reserve(1, timeout=DEADLINE) as r:
            r[0][:15] = b"python in place"
            r.set_length(0, 15)
        pub.send(b"python by copy", timeout=DEADLINE)
        out, err = tail.communicate(timeout=DEADLINE)
    assert tail.returncode == 0, err
    assert "python in place" in out
    assert "python by copy" in out
    assert out.index("python in place") < out.index("python by copy")


def test_python_receives_what_a_cpp_program_publishes(
    daemon: Daemon, client: shmbus.Client
) -> None:
    sub = client.open_subscriber("interop")
    done = subprocess.run(
        [shmbusctl(), "--socket", str(daemon.socket), "pub", "interop", "from c++ one",
         "from c++ two"],
        capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    got: list[bytes] = []
    while len(got) < 2:
        for msg in sub.receive(64, timeout=DEADLINE):
            got.append(bytes(msg.data))
    assert got == [b"from c++ one", b"from c++ two"]


def test_the_example_of_the_python_page_exchanges_messages_with_a_cpp_program(
    daemon: Daemon,
) -> None:
    socket = str(daemon.socket)
    # The C++ side writes first: the queue keeps the messages until the example reads them.
    sent = [f"from c++ {i}" for i in range(4)]
    pub = subprocess.run([shmbusctl(), "--socket", socket, "pub", "doc-in", *sent],
                         capture_output=True, text=True, timeout=DEADLINE)
    assert pub.returncode == 0, pub.stderr

    example = subprocess.run([sys.executable, "-c", doc_example(), "doc-out", "doc-in"],
                             env=dict(os.environ, SHMBUS_SOCKET=socket), capture_output=True,
                             text=True, timeout=DEADLINE)
    assert example.returncode == 0, example.stderr
    assert example.stdout.splitlines() == [f"#{i} {text}" for i, text in enumerate(sent)]

    # What it wrote, three in place and one by copy, the C++ side reads in order.
    tail = subprocess.run([shmbusctl(), "--socket", socket, "tail", "doc-out", "--count", "4",
                           "--timeout", str(int(DEADLINE))],
                          capture_output=True, text=True, timeout=2 * DEADLINE)
    assert tail.returncode == 0, tail.stderr
    positions = [tail.stdout.find(text) for text in
                 ("message 0", "message 1", "message 2", "hello")]
    assert -1 not in positions, tail.stdout
    assert positions == sorted(positions), tail.stdout


def test_a_python_caller_calls_a_cpp_server(rpc_daemon: Daemon) -> None:
    server = subprocess.Popen(
        [shmbusctl(), "--socket", str(rpc_daemon.socket), "serve", "svc", "--echo", "--count",
         "1", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(server), rpc_daemon.connect(name="pytest-caller") as client:
        caller = client.open_caller("svc", wait_for_server=True)
        assert caller.call(b"hello from python", timeout=DEADLINE) == b"hello from python"
        _, err = server.communicate(timeout=DEADLINE)
    assert server.returncode == 0, err
