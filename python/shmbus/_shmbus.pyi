# Type stubs of shmbus._shmbus, the native core (python/src/shmbus_module.cpp). The package
# shmbus re-exports these; the exception and record classes are in shmbus/__init__.py.
from types import TracebackType
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Self

from . import ChannelInfo, ChannelSummary, CounterValue, Received, Request

library_version: str

WaitMode = Literal["adaptive", "blocking", "spin"]
Role = Literal["reader", "writer"]

def connect(
    socket: str | bytes | None = None,
    name: str | None = None,
    request_timeout: float = 5.0,
    wait_for_daemon: float | None = 0.0,
    reconnect: bool = True,
) -> Client:
    """Connects to shmbusd. socket: None finds it as the library does ($SHMBUS_SOCKET, then
    $XDG_RUNTIME_DIR/shmbus/shmbusd.sock, then /run/shmbusd/shmbusd.sock). wait_for_daemon:
    seconds to wait for a daemon not listening yet (None: for ever). NotFoundError if none
    listens."""

def errc_name(code: int) -> str: ...
def _setup(
    errors: Mapping[int, type[BaseException]],
    info: type,
    stats: type,
    summary: type,
    received: type,
) -> None: ...
def _setup_state(counter_value: type) -> None: ...
def _setup_rpc(request: type) -> None: ...

class _Scoped:
    """A context manager: the with block's end closes, commits or releases the object."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

class Client(_Scoped):
    """A connection to shmbusd. One thread at a time."""

    @property
    def socket_path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def open_publisher(
        self, channel: str, wait: WaitMode = "adaptive", spin_iterations: int = 0
    ) -> Publisher: ...
    def open_subscriber(
        self, channel: str, wait: WaitMode = "adaptive", spin_iterations: int = 0
    ) -> Subscriber: ...
    def open_blackboard(
        self, channel: str, role: Role = "reader", wait: WaitMode = "adaptive"
    ) -> Blackboard: ...
    def open_counters(
        self, channel: str, role: Role = "reader", wait: WaitMode = "adaptive"
    ) -> Counters: ...
    def open_pool(
        self, channel: str, role: Role = "reader", wait: WaitMode = "adaptive"
    ) -> Pool:
        """Opens a pool channel as a writer (ACL publish: acquires and writes blocks) or a
        reader (ACL subscribe: adopts blocks, mapped read-only). InvalidArgumentError if it
        is not a pool."""
    def open_server(
        self, channel: str, wait: WaitMode = "adaptive", spin_iterations: int = 0
    ) -> Server:
        """Opens an rpc channel as a server (ACL serve). LimitReachedError beyond
        max_servers; InvalidArgumentError if it is not an rpc channel."""
    def open_caller(
        self,
        channel: str,
        wait: WaitMode = "adaptive",
        spin_iterations: int = 0,
        wait_for_server: bool = False,
    ) -> Caller:
        """Opens an rpc channel as a caller (ACL call). wait_for_server: a call made while no
        server is attached waits for one (up to its timeout) instead of NotFoundError."""
    def list_channels(self) -> list[ChannelSummary]: ...
    def channel_info(self, name: str) -> ChannelSummary: ...
    def close(self) -> None: ...

class _Endpoint(_Scoped):
    """What a Publisher and a Subscriber both have (no such class exists at run time)."""

    @property
    def channel(self) -> str: ...
    @property
    def info(self) -> ChannelInfo: ...
    @property
    def closed(self) -> bool: ...
    _waiting: bool
    def close(self) -> None:
        """Leaves the channel; BufferError while a view of a held batch lives."""
    def wait_handle(self) -> int:
        """A descriptor that becomes readable when the endpoint has something to do (for
        event loops: select, selectors, asyncio's add_reader). Owned by the endpoint."""

class Publisher(_Endpoint):
    """Writes to a channel. One thread at a time."""

    def send(self, data: Any, timeout: float | None = None) -> None:
        """Copies a bytes-like object into a slot and publishes it. timeout: None waits for
        room for ever, 0 tries once (WouldBlockError), else seconds (TimeoutError)."""
    def reserve(self, max_count: int = 1, timeout: float | None = None) -> Reservation:
        """Reserves 1 to max_count consecutive slots to fill in place."""
    async def reserve_async(
        self, max_count: int = 1, timeout: float | None = None
    ) -> Reservation:
        """As reserve(), awaiting room on the wait handle without blocking the event loop."""
    async def send_async(self, data: Any, timeout: float | None = None) -> None:
        """As send(), awaiting room on the wait handle without blocking the event loop."""
    def _poll_reserve(self, max_count: int) -> Reservation | None: ...
    def _poll_send(self, data: Any) -> bool: ...

class Reservation(_Scoped):
    """Slots reserved in place: r[i] is a writable memoryview of slot i (capacity bytes)."""

    @property
    def capacity(self) -> int: ...
    @property
    def done(self) -> bool: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> memoryview: ...
    def set_length(self, i: int, n: int) -> None: ...
    def sequence(self, i: int) -> int: ...
    def commit(self) -> None: ...
    def abandon(self) -> None: ...

class Subscriber(_Endpoint):
    """Reads from a channel. One thread at a time."""

    @property
    def lost(self) -> int: ...
    def receive(self, max_count: int = 64, timeout: float | None = None) -> Batch:
        """Takes 1 to max_count messages in place, waiting for the first."""
    def receive_copy(self, timeout: float | None = None) -> Received: ...
    async def receive_async(self, max_count: int = 64, timeout: float | None = None) -> Batch:
        """As receive(), awaiting the wait handle without blocking the event loop."""
    def _poll_receive(self, max_count: int) -> Batch | None: ...

class Batch(_Scoped):
    """Messages received in place; released at the end of iteration, on leaving a with
    block, by release(), or when the object dies."""

    @property
    def lost_before(self) -> int: ...
    @property
    def released(self) -> bool: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Message: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    def release(self) -> None: ...

class Message:
    """One message of a batch; exports its bytes through the buffer protocol while held."""

    @property
    def sequence(self) -> int: ...
    @property
    def data(self) -> memoryview: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...

class _SharedState(_Scoped):
    """What a Blackboard and a Counters both have (no such class exists at run time)."""

    @property
    def channel(self) -> str: ...
    @property
    def info(self) -> ChannelInfo: ...
    @property
    def role(self) -> Role: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

class Blackboard(_SharedState):
    """Shared state: len(board) elements of element_size bytes, each read and written whole.
    One thread at a time."""

    @property
    def element_size(self) -> int: ...
    def __len__(self) -> int: ...
    def read(self, index: int) -> bytes:
        """Element `index`, consistent (never a mix of two writes)."""
    def read_into(self, index: int, buffer: Any) -> int:
        """Copies element `index` into a writable buffer of at least element_size bytes;
        returns its version (how many writes it has had, mod 2**32)."""
    def read_range(self, first: int, count: int) -> bytes: ...
    def write(self, index: int, data: Any) -> None:
        """Replaces element `index` (at most element_size bytes; the rest becomes zeros)."""
    def write_range(self, first: int, data: Any) -> None: ...
    def update(self, index: int, fn: Callable[[bytearray], object]) -> None:
        """fn changes a bytearray of the element's bytes in place, under its writer lock;
        published as one write. If fn raises, the element stays as it was."""

class Counters(_SharedState):
    """Named 64-bit atomic cells shared by every process of the channel."""

    @property
    def capacity(self) -> int: ...
    def cell(self, name: str) -> Counter:
        """The cell called `name`; a writer creates it (value 0) if it does not exist."""
    def list(self) -> list[CounterValue]: ...

class Counter:
    """One cell: each operation is one atomic instruction on shared memory. Values wrap mod
    2**64. Valid while its Counters is open (ClosedError after)."""

    @property
    def name(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def value(self) -> int: ...
    def load(self) -> int: ...
    def store(self, value: int) -> None: ...
    def fetch_add(self, delta: int = 1) -> int: ...
    def fetch_sub(self, delta: int = 1) -> int: ...
    def fetch_max(self, value: int) -> int: ...
    def compare_exchange(self, expected: int, desired: int) -> tuple[bool, int]: ...

class _Rpc(_Scoped):
    """What a Server and a Caller both have (no such class exists at run time)."""

    @property
    def channel(self) -> str: ...
    @property
    def info(self) -> ChannelInfo: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

class Server(_Rpc):
    """Serves the calls of an rpc channel. One thread at a time."""

    def receive(self, max_count: int = 16, timeout: float | None = None) -> list[Request]:
        """1 to max_count requests, copied out, from every caller in turn. TimeoutError when
        none came within timeout (None: wait for ever; 0: WouldBlockError if none waits)."""
    def respond(self, request: Request, data: Any) -> None:
        """Answers a request (a bytes-like reply). LostError if its caller gave up meanwhile
        (the reply is dropped and counted); MessageTooLargeError beyond the reply size."""

class Caller(_Rpc):
    """Calls the servers of an rpc channel. One thread at a time."""

    @property
    def in_flight(self) -> int: ...
    def call(self, data: Any, timeout: float | None = None) -> bytes:
        """Sends a bytes-like request and returns the reply. NotFoundError when no server is
        attached (see wait_for_server), ClosedError when the server that took the call died,
        TimeoutError when no reply came within timeout (None: wait for ever); a call that
        times out or is interrupted is given up."""

class Pool(_SharedState):
    """Blocks of a pool channel for large payloads, passed between processes by 16-byte
    handles. Its blocks stay usable after close()."""

    @property
    def block_size(self) -> int: ...
    def __len__(self) -> int: ...
    def acquire(self, timeout: float | None = None) -> Block:
        """A free block to fill in place (writers only: PermissionDeniedError). timeout: None
        waits for a block to be given back for ever, 0 tries once (WouldBlockError), else
        seconds (TimeoutError)."""
    def hand_on(self, block: Block, copies: int = 1) -> bytes:
        """The block's 16-byte handle carrying `copies` references (one per receiver), to
        send in a message; the Block is released. BufferError while a view of its data
        other than block.data lives."""
    def share(self, block: Block, copies: int = 1) -> bytes:
        """As hand_on(), keeping the Block."""
    def adopt(self, handle: Any) -> Block:
        """Takes one of the references a 16-byte handle (any bytes-like object) carries.
        NotFoundError for a stale handle (the block was given back and reused) or one with no
        reference left; InvalidArgumentError for a handle of another pool;
        AlreadyExistsError if this Pool holds the block already (drop() the copy)."""
    def drop(self, handle: Any) -> None:
        """Gives back one of the references a handle carries, unread."""

class Block(_Scoped):
    """One reference to a block, held by this process: its bytes in place until released or
    handed on; released on leaving a with block, by release(), or when the object dies."""

    @property
    def data(self) -> memoryview:
        """The block's bytes (writable for a writer's block); released with the block."""
    @property
    def handle(self) -> bytes: ...
    @property
    def writable(self) -> bool: ...
    @property
    def released(self) -> bool: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...
    def release(self) -> None:
        """Gives the reference back; BufferError while a view of its data other than
        block.data lives."""
