"""The pytest suite of the Python package shmbus, against the real shmbusd.

ctest runs it (tests/python/CMakeLists.txt) with SHMBUSD naming the daemon under test,
SHMBUSCTL the shmbusctl of the same build (a C++ program, the peer of the interop tests;
absent when the tools are not built) and PYTHONPATH the built package. Each test that asks
for the `daemon` fixture gets its own shmbusd on its own socket, configured with CHANNELS,
started and ready (READY=1 on the notify socket, as under systemd) before the test runs,
and stopped with SIGTERM afterwards, which must end it with status 0.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import shmbus

#: How long to wait for something that should happen soon (slow machines, busy CI).
DEADLINE = 60.0


@dataclass
class Channel:
    name: str
    kind: str
    slot_size: int = 64
    slot_count: int = 16
    overflow: str = "block"
    max_publishers: int = 2
    max_subscribers: int = 2


#: The channels every test daemon has.
CHANNELS = [
    Channel("jobs", "queue", slot_size=128, slot_count=64),
    Channel("news", "broadcast", slot_size=256, slot_count=8),
    Channel("drops", "broadcast", slot_size=64, slot_count=4, overflow="drop"),
    Channel("stream", "queue", slot_size=64, slot_count=1024),
    Channel("interop", "broadcast", slot_size=128, slot_count=16),
    # The two ends of the example of docs/python.md when it talks to another program.
    Channel("doc-out", "queue", slot_size=64, slot_count=16),
    Channel("doc-in", "queue", slot_size=64, slot_count=16),
    Channel("board", "blackboard", slot_size=32, slot_count=8, max_publishers=4,
            max_subscribers=4),
    Channel("stats", "counters", slot_size=48, slot_count=8, max_publishers=4,
            max_subscribers=4),
    # A pool of 4 blocks of 4 KiB, and a queue for its 16-byte handles.
    Channel("frames", "pool", slot_size=4096, slot_count=4),
    Channel("handles", "queue", slot_size=16, slot_count=16),
]


def channels_yaml(channels: list[Channel]) -> str:
    lines = ["channels:"]
    for c in channels:
        if c.kind == "rpc":
            # slot_size is the request and reply size, slot_count the depth, publishers the
            # callers and subscribers the servers.
            lines += [
                f"  - name: {c.name}",
                "    kind: rpc",
                f"    request_size: {c.slot_size}",
                f"    reply_size: {c.slot_size}",
                f"    depth: {c.slot_count}",
                f"    max_callers: {c.max_publishers}",
                f"    max_servers: {c.max_subscribers}",
                "    acl:",
                '      call:  {users: ["*"]}',
                '      serve: {users: ["*"]}',
            ]
            continue
        lines += [
            f"  - name: {c.name}",
            f"    kind: {c.kind}",
            f"    slot_size: {c.slot_size}",
            f"    slot_count: {c.slot_count}",
        ]
        if c.kind == "broadcast":
            lines.append(f"    overflow: {c.overflow}")
        lines += [
            f"    max_publishers: {c.max_publishers}",
            f"    max_subscribers: {c.max_subscribers}",
            "    acl:",
            '      publish:   {users: ["*"]}',
            '      subscribe: {users: ["*"]}',
        ]
    return "\n".join(lines) + "\n"


#: The page whose complete example the tests run.
PYTHON_DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def doc_example() -> str:
    """The complete example of docs/python.md: its first ```python block, as a user copies it."""
    found = re.search(r"^```python\n(.*?)^```", PYTHON_DOC.read_text(), re.S | re.M)
    assert found, f"{PYTHON_DOC}: no ```python block (the complete example) found"
    return found.group(1)


def scaled(n: int) -> int:
    """n scaled by SHMBUS_TEST_SCALE (the sanitizer and slow runs shrink counts), at least 1."""
    scale = float(os.environ.get("SHMBUS_TEST_SCALE", "1"))
    return max(1, int(n * scale))


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite through ctest (tests/python/)")
    return value


class Daemon:
    """One shmbusd on a private directory, started by start() and ready when it returns."""

    def __init__(self, channels: list[Channel]) -> None:
        # A short directory of our own: the socket path must stay below 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="shmbus-py-"))
        self.socket = self.dir / "shmbusd.sock"
        self.config = self.dir / "shmbusd.yaml"
        self.config.write_text(channels_yaml(channels))
        self.stderr_path = self.dir / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        notify_path = self.dir / "notify"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
        env["NOTIFY_SOCKET"] = str(notify_path)
        args = [
            required_env("SHMBUSD"),
            "--config",
            str(self.config),
            "--socket",
            str(self.socket),
            "--state-dir",
            str(self.dir),
        ]
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(args, env=env, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + DEADLINE
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"shmbusd sent no READY=1 within {DEADLINE} s: {self.stderr()}")
                notify.settimeout(min(left, 1.0))
                try:
                    datagram = notify.recv(4096)
                except TimeoutError:
                    if self.process.poll() is not None:
                        pytest.fail(f"shmbusd exited with {self.process.returncode}: "
                                    f"{self.stderr()}")
                    continue
                if b"READY=1" in datagram.split(b"\n"):
                    break
        finally:
            notify.close()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def connect(self, **kwargs: object) -> shmbus.Client:
        return shmbus.connect(str(self.socket), **kwargs)  # type: ignore[arg-type]

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"shmbusd did not stop within {DEADLINE} s of SIGTERM")

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running(channels: list[Channel]) -> Iterator[Daemon]:
    """A started shmbusd with `channels`, which must end with status 0 on SIGTERM."""
    d = Daemon(channels)
    try:
        d.start()
        yield d
        status = d.stop()
        assert status == 0, f"shmbusd exited with {status} after SIGTERM: {d.stderr()}"
    finally:
        d.cleanup()


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with running(CHANNELS) as d:
        yield d


#: The rpc channel of the rpc tests: 256-byte requests and replies, 8 calls in flight per
#: caller, 4 callers, 2 servers.
RPC_CHANNELS = [
    Channel("svc", "rpc", slot_size=256, slot_count=8, max_publishers=4, max_subscribers=2)
]


@pytest.fixture
def rpc_daemon() -> Iterator[Daemon]:
    """A shmbusd with RPC_CHANNELS only."""
    with running(RPC_CHANNELS) as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[shmbus.Client]:
    with daemon.connect(name="pytest") as c:
        yield c


def wait_until(predicate: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Waits for predicate() to hold, looking again after each short pause; fails naming
    `what` at the deadline. For state another process changes (a channel's counters)."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {deadline} s")
        time.sleep(0.01)


@contextmanager
def reaped(child: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Kills and reaps `child` on the way out if it is still running (a failed test), and
    closes its pipes."""
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()


def python_child(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """A child python3 running `code` with the same package path, stdout/stderr captured."""
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
