"""The complete example of docs/python.md, taken from the page itself and run against shmbusd:
the proof that a script written from that page works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import DEADLINE, Daemon

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def doc_example() -> str:
    found = re.search(r"^```python\n(.*?)^```", DOC.read_text(), re.S | re.M)
    assert found, f"{DOC}: no ```python block (the complete example) found"
    return found.group(1)


def test_the_example_of_the_python_page_runs(daemon: Daemon) -> None:
    env = dict(os.environ, SHMBUS_SOCKET=str(daemon.socket))
    done = subprocess.run([sys.executable, "-c", doc_example(), "jobs"], env=env,
                          capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["#0 message 0", "#1 message 1", "#2 message 2",
                                        "#3 hello"]
