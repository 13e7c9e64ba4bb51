#!/usr/bin/env python3
"""Messages per second through the Python package shmbus, one publisher process and one
subscriber process, zero-copy both ways: the publisher reserves batches of --batch slots and
fills each with --size bytes, the subscriber receives batches of up to --batch in place and
checks every message's sequence. shmbus-bench runs this script for its `python` row (the
bench role below), beside the C++ rows of the same run (docs/benchmarks.md).

usage: python3 tools/bench/python_rate.py --socket PATH --channel NAME
           [--count N] [--size BYTES] [--batch N]
The channel must be a queue, or a broadcast channel with overflow: block, whose slots hold
--size bytes, open to this user, and used by nothing else meanwhile. PYTHONPATH must reach
the package (build/default/python in a build tree) unless python3-shmbus is installed.

Bench role (--bench-role publisher|subscriber, as shmbus-bench starts it): connects and opens
its endpoint, prints "ready", waits for a line "go" on stdin, then streams: the publisher
for --duration seconds followed by an empty message as the end marker, the subscriber until
that marker. Then it prints "MESSAGES T_START_NS T_END_NS CPU_NS OUT_OF_ORDER" (the clock is
CLOCK_MONOTONIC, the CPU time this process's).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import shmbus


def payload_of(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def publish(socket: str, channel: str, count: int, size: int, batch: int) -> None:
    payload = payload_of(size)
    with shmbus.connect(socket, name="python-rate-pub") as client:
        pub = client.open_publisher(channel)
        sent = 0
        while sent < count:
            with pub.reserve(min(batch, count - sent), timeout=60.0) as slots:
                for i in range(len(slots)):
                    slots[i][:size] = payload
                    slots.set_length(i, size)
                sent += len(slots)


def bench_role(args: argparse.Namespace) -> int:
    """One side of shmbus-bench's python row: see the module's docstring."""
    publisher = args.bench_role == "publisher"
    with shmbus.connect(args.socket, name=f"bench-python-{args.bench_role}") as client:
        if publisher:
            pub = client.open_publisher(args.channel)
        else:
            sub = client.open_subscriber(args.channel)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
        messages = 0
        out_of_order = 0
        cpu = time.process_time_ns()
        start = time.monotonic_ns()
        if publisher:
            payload = payload_of(args.size)
            size = args.size
            deadline = start + int(args.duration * 1e9)
            while time.monotonic_ns() < deadline:
                with pub.reserve(args.batch, timeout=60.0) as slots:
                    for i in range(len(slots)):
                        slots[i][:size] = payload
                        slots.set_length(i, size)
                    messages += len(slots)
            end = time.monotonic_ns()
            pub.send(b"", timeout=60.0)  # the end marker
        else:
            expected = None
            done = False
            while not done:
                for msg in sub.receive(args.batch, timeout=60.0):
                    if expected is not None and msg.sequence != expected:
                        out_of_order += 1
                    expected = msg.sequence + 1
                    if len(msg) == 0:
                        done = True
                    else:
                        messages += 1
            end = time.monotonic_ns()
        cpu = time.process_time_ns() - cpu
    print(f"{messages} {start} {end} {cpu} {out_of_order}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--bench-role", choices=("publisher", "subscriber"))
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bench_role:
        return bench_role(args)
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
