"""asyncio for shmbus endpoints: receive_async(), reserve_async() and send_async().

Each awaits the endpoint's wait handle (``wait_handle()``, the descriptor of shmbus.h's
``shmbus_*_wait_handle()``) with ``loop.add_reader()``, so that a task waiting for a message,
or for room in a full ring, costs the event loop nothing until the descriptor becomes
readable. The rule that makes this correct is the wait handle's own: it is readable while the
endpoint has something to do and is re-armed by a call that finds nothing (a receive or
reserve that would block). So each round first tries without waiting (``_poll_*``, which
returns None instead of raising WouldBlockError) and only then waits for readability; a
message that arrives between the try and the wait leaves the descriptor readable, and the
loop wakes at once.

Cancellation takes nothing: the waiting happens before the try that takes a batch, and the
reader is removed on every way out. One task at a time waits on an endpoint (a second one
gets RuntimeError), as one thread at a time uses it.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Callable, TypeVar

from . import _shmbus

T = TypeVar("T")

_TIMED_OUT = 2  # shmbus_errc SHMBUS_E_TIMED_OUT


def _deadline(loop: asyncio.AbstractEventLoop, timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be None or a number of seconds, not {timeout!r}")
    if not timeout >= 0 or math.isinf(timeout):
        raise ValueError(
            f"timeout must be None (wait for ever) or a number of seconds >= 0, not {timeout!r}"
        )
    return loop.time() + timeout


def _timed_out(what: str, channel: str, timeout: float) -> BaseException:
    from . import TimeoutError as ShmbusTimeoutError

    message = f"{what} on '{channel}': nothing could proceed within {timeout:.3f} s"
    error = ShmbusTimeoutError(message)
    error.code = _TIMED_OUT
    error.name = _shmbus.errc_name(_TIMED_OUT)
    error.message = message
    error.sys_errno = 0
    return error


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _until(
    endpoint: Any, what: str, attempt: Callable[[], T | None], timeout: float | None
) -> T:
    """Runs attempt() until it returns something other than None, awaiting the endpoint's
    wait handle between tries; shmbus.TimeoutError once `timeout` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = _deadline(loop, timeout)
    if endpoint._waiting:
        raise RuntimeError(
            f"{what} on '{endpoint.channel}': another task is already waiting on this "
            "endpoint (an endpoint is used by one task at a time)"
        )
    fd = endpoint.wait_handle()  # before the first try: a wake-up after it is not missed
    endpoint._waiting = True
    try:
        while True:
            result = attempt()
            if result is not None:
                return result
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                assert timeout is not None
                raise _timed_out(what, endpoint.channel, timeout)
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            try:
                if left is None:
                    await readable
                else:
                    await asyncio.wait_for(readable, left)
            except asyncio.TimeoutError:
                pass  # tried once more above, then reported as shmbus.TimeoutError
            finally:
                loop.remove_reader(fd)
    finally:
        endpoint._waiting = False


async def receive_async(
    self: _shmbus.Subscriber, max_count: int = 64, timeout: float | None = None
) -> _shmbus.Batch:
    """Awaits 1 to max_count messages in place, as receive() returns them, without blocking
    the event loop. timeout: None waits for ever, else seconds (shmbus.TimeoutError)."""
    return await _until(self, "receive_async", lambda: self._poll_receive(max_count), timeout)


async def reserve_async(
    self: _shmbus.Publisher, max_count: int = 1, timeout: float | None = None
) -> _shmbus.Reservation:
    """Awaits room for 1 to max_count slots, as reserve() returns them, without blocking the
    event loop."""
    return await _until(self, "reserve_async", lambda: self._poll_reserve(max_count), timeout)


async def send_async(self: _shmbus.Publisher, data: Any, timeout: float | None = None) -> None:
    """Awaits room, then copies data into a slot and publishes it, as send() does."""
    await _until(self, "send_async", lambda: True if self._poll_send(data) else None, timeout)
