#!/usr/bin/env python3
"""Messages per second through the Python package shmbus, one publisher process and one
subscriber process, zero-copy both ways: the publisher reserves batches of --batch slots and
fills each with --size bytes, the subscriber receives batches of up to --batch in place and
checks every message's sequence. The C++ figures of the same shape are shmbus-bench's
(docs/benchmarks.md); run both on the same machine to compare.

usage: python3 tools/bench/python_rate.py --socket PATH --channel NAME
           [--count N] [--size BYTES] [--batch N]
The channel must be a queue, or a broadcast channel with overflow: block, whose slots hold
--size bytes, open to this user, and used by nothing else meanwhile. PYTHONPATH must reach
the package (build/default/python in a build tree) unless python3-shmbus is installed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import shmbus


def publish(socket: str, channel: str, count: int, size: int, batch: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    with shmbus.connect(socket, name="python-rate-pub") as client:
        pub = client.open_publisher(channel)
        sent = 0
        while sent < count:
            with pub.reserve(min(batch, count - sent), timeout=60.0) as slots:
                for i in range(len(slots)):
                    slots[i][:size] = payload
                    slots.set_length(i, size)
                sent += len(slots)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        publish(args.socket, args.channel, args.count, args.size, args.batch)
        return 0

    with shmbus.connect(args.socket, name="python-rate-sub") as client:
        sub = client.open_subscriber(args.channel, wait="adaptive")
        child = subprocess.Popen([sys.executable, __file__, "--publish", *sys.argv[1:]])
        received = 0
        expected = None
        start = None
        try:
            while received < args.count:
                with sub.receive(args.batch, timeout=60.0) as batch:
                    if start is None:
                        start = time.perf_counter()
                    for msg in batch:
                        if expected is not None and msg.sequence != expected:
                            print(f"out of order: #{msg.sequence} after #{expected - 1}",
                                  file=sys.stderr)
                            return 1
                        expected = msg.sequence + 1
                        received += 1
            seconds = time.perf_counter() - (start or 0.0)
        finally:
            if child.wait(timeout=60) != 0:
                print(f"the publisher exited with {child.returncode}", file=sys.stderr)
                return 1
    print(f"python {args.size} B, batches of {args.batch}: {received} messages in "
          f"{seconds:.3f} s = {received / seconds:,.0f} msgs/s (lost {sub.lost})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
