"""shmbus: the Python binding of the shmbus shared-memory message bus.

Zero-copy both ways: ``Publisher.reserve()`` hands out writable memoryviews of ring slots,
``Subscriber.receive()`` read-only memoryviews of messages in place; the copying forms are
``Publisher.send()`` and ``Subscriber.receive_copy()``. In asyncio, ``await
sub.receive_async()``, ``await pub.reserve_async()`` and ``await pub.send_async()`` wait on
the endpoint's wait handle instead of blocking the loop. On an rpc channel,
``Client.open_caller()`` gives a ``Caller`` whose ``call(data, timeout)`` returns the reply, and
``Client.open_server()`` a ``Server`` that receives ``Request`` records and responds to them.
On a pool channel, ``Client.open_pool()`` gives a ``Pool`` whose blocks (``Block``) carry large
payloads between processes by 16-byte handles. See docs/python.md.

Every failure of the library is an exception of the class of its code (``TimeoutError``,
``LostError``, ...), all subclasses of ``shmbus.Error``, which carry the code's name (``name``,
as ``Errc``), the library's sentence (``message``) and the number (``code``).
"""

from __future__ import annotations

import builtins
from typing import NamedTuple

from ._shmbus import (
    Batch,
    Blackboard,
    Block,
    Caller,
    Client,
    Counter,
    Counters,
    Message,
    Pool,
    Publisher,
    Reservation,
    Server,
    Subscriber,
    _setup,
    _setup_rpc,
    _setup_state,
    connect,
    errc_name,
    library_version,
)

__all__ = [
    "AlreadyExistsError",
    "Batch",
    "Blackboard",
    "Block",
    "Caller",
    "ChannelInfo",
    "ChannelStats",
    "ChannelSummary",
    "Client",
    "ClosedError",
    "CorruptedError",
    "Counter",
    "CounterValue",
    "Counters",
    "Error",
    "InvalidArgumentError",
    "LimitReachedError",
    "LostError",
    "Message",
    "MessageTooLargeError",
    "NoMemoryError",
    "NotFoundError",
    "PermissionDeniedError",
    "Pool",
    "ProtocolError",
    "Publisher",
    "Received",
    "Request",
    "Reservation",
    "Server",
    "Subscriber",
    "SystemCallError",
    "TimeoutError",
    "VersionMismatchError",
    "WouldBlockError",
    "connect",
    "errc_name",
    "library_version",
]

__version__ = library_version


class Error(Exception):
    """A failure reported by libshmbus.

    ``code`` is the shmbus_errc / shmbus::Errc value, ``name`` its name ("timed_out", ...),
    ``message`` the library's sentence (which channel, which size, which path) and
    ``sys_errno`` the errno of a failed system call (else 0).
    """

    code: int = 0
    name: str = "unknown"
    message: str = ""
    sys_errno: int = 0


class WouldBlockError(Error):
    """Nothing to read, or no free slot, right now (a call with timeout=0)."""


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 - mirrors Errc::timed_out
    """A blocking call reached its deadline."""


class InvalidArgumentError(Error, ValueError):
    """The caller passed something unusable (or called out of turn)."""


class MessageTooLargeError(Error, ValueError):
    """The message does not fit the channel's slot."""


class CorruptedError(Error):
    """A value read from shared memory failed validation."""


class VersionMismatchError(Error):
    """The segment or daemon speaks another version."""


class NoMemoryError(Error, MemoryError):
    """Memory could not be reserved."""


class LimitReachedError(Error):
    """A configured limit was hit."""


class PermissionDeniedError(Error, PermissionError):
    """The caller may not do this."""


class NotFoundError(Error, LookupError):
    """No such channel, endpoint or daemon."""


class SystemCallError(Error):
    """A system call failed: see ``sys_errno``."""


class ClosedError(Error):
    """The endpoint or connection was closed."""


class LostError(Error):
    """Messages were overwritten before they were read (drop policy).

    Raised by ``Batch.release()`` (and so at the end of iterating a batch): the messages of
    the batch must be discarded; ``lost`` is how many.
    """

    lost: int = 0


class AlreadyExistsError(Error):
    """A channel or endpoint of that name exists."""


class ProtocolError(Error):
    """A peer sent a malformed or unexpected message."""


class ChannelInfo(NamedTuple):
    """A channel's identity and geometry."""

    name: str
    kind: str  # "queue", "broadcast", "blackboard", "counters", "rpc" or "pool"
    overflow: str  # "block" or "drop"
    slot_size: int
    slot_count: int
    max_publishers: int
    max_subscribers: int
    creation_id: int


class ChannelStats(NamedTuple):
    """A channel's counters."""

    published: int
    consumed: int
    dropped: int
    abandoned: int
    redelivered: int
    corrupted: int
    data_waits: int
    data_wakes: int
    space_waits: int
    space_wakes: int
    depth: int
    high_water: int
    publishers: int
    subscribers: int


class ChannelSummary(NamedTuple):
    """One channel of the daemon's discovery table."""

    info: ChannelInfo
    stats: ChannelStats
    dynamic: bool


class Received(NamedTuple):
    """What ``Subscriber.receive_copy()`` delivered."""

    data: bytes
    sequence: int
    lost_before: int


class Request(NamedTuple):
    """One request ``Server.receive()`` took, copied out of the channel: answer it with
    ``Server.respond(request, data)``."""

    data: bytes
    id: int  # the call's correlation id (unique per caller)
    caller: int  # the caller's entry in the channel's caller table
    slot: int  # the call slot of that caller


class CounterValue(NamedTuple):
    """A cell of a counters channel, as ``Counters.list()`` lists it."""

    name: str
    value: int
    index: int


_ERRORS: dict[int, type[Error]] = {
    0: Error,
    1: WouldBlockError,
    2: TimeoutError,
    3: InvalidArgumentError,
    4: MessageTooLargeError,
    5: CorruptedError,
    6: VersionMismatchError,
    7: NoMemoryError,
    8: LimitReachedError,
    9: PermissionDeniedError,
    10: NotFoundError,
    11: SystemCallError,
    12: ClosedError,
    13: LostError,
    14: AlreadyExistsError,
    15: ProtocolError,
}

_setup(_ERRORS, ChannelInfo, ChannelStats, ChannelSummary, Received)
_setup_state(CounterValue)
_setup_rpc(Request)

# asyncio (shmbus/_aio.py): coroutine methods over each endpoint's wait handle, written in
# Python and set on the native classes, whose instances the core creates.
from . import _aio  # noqa: E402 - needs the exception classes above

Subscriber.receive_async = _aio.receive_async  # type: ignore[attr-defined]
Publisher.reserve_async = _aio.reserve_async  # type: ignore[attr-defined]
Publisher.send_async = _aio.send_async  # type: ignore[attr-defined]
