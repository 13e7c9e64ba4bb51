"""The complete example of docs/python.md, taken from the page itself and run against shmbusd
alone on one channel: the proof that a script written from that page works. With a C++ program
at the other ends of two channels: test_interop.py."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import DEADLINE, Daemon, doc_example


def test_the_example_of_the_python_page_runs(daemon: Daemon) -> None:
    env = dict(os.environ, SHMBUS_SOCKET=str(daemon.socket))
    done = subprocess.run([sys.executable, "-c", doc_example(), "jobs"], env=env,
                          capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["#0 message 0", "#1 message 1", "#2 message 2",
                                        "#3 hello"]
