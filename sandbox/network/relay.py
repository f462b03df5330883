"""A TCP relay that plants a link's latency: ``python -m sandbox relay``.

Each accepted connection gets its own connection to the backend. Every chunk
read from one side is written to the other at an absolute deadline:

* one way: arrival + RTT/2 + a jitter sample (zero-mean, bounded), never before
  the previous chunk of the same direction (TCP keeps order);
* a new connection's first bytes to the server also wait the connection setup:
  one RTT for TCP's handshake, plus one for TLS 1.3 or two for TLS 1.2 when the
  link is TLS — on loopback ``connect()`` returns at once, on the real link the
  client cannot send its request before the handshakes complete;
* with a bandwidth cap, a chunk first waits for the link to be free
  (serialisation at the cap, shared by the link's connections, per direction).

Half-closes are forwarded in order (an EOF follows the last byte, one way
later), and flow control holds: a side stops being read while the other side's
write buffer is full or more than :data:`MAX_QUEUED` bytes are in flight.
Both sockets have ``TCP_NODELAY``, so no Nagle delay is added.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from .clock import Scheduler
from .profile import _PARETO_STD, LinkSpec

MAX_QUEUED = 4 * 1024 * 1024  # bytes in flight per direction before the source is paused
RESUME_QUEUED = 1024 * 1024


class LinkModel:
    """The delays of one link, shared by its connections (one random stream, one serialiser per direction)."""

    def __init__(self, spec: LinkSpec, seed: int | None = None) -> None:
        self.spec = spec
        self.owd_ns = round(spec.rtt_s * 1e9 / 2)
        self.rtt_ns = round(spec.rtt_s * 1e9)
        self._rng = random.Random(seed)
        self._sample = self._sampler()
        self._bits_ns = None if spec.bandwidth_bps is None else 1e9 / spec.bandwidth_bps  # ns per bit
        self._free_ns = [0, 0]  # when each direction's line is free again (bandwidth cap)

    def _sampler(self) -> Callable[[], int]:
        jitter = self.spec.jitter
        if not jitter.active:
            return lambda: 0
        sigma = jitter.sigma_s * 1e9
        lo, hi = (b * 1e9 for b in jitter.bounds_s())
        rng = self._rng
        if jitter.distribution == "normal":
            return lambda: round(min(hi, max(lo, rng.gauss(0.0, sigma))))
        if jitter.distribution == "uniform":
            return lambda: round(rng.uniform(lo, hi))
        scale = sigma / _PARETO_STD
        return lambda: round(min(hi, scale * (rng.paretovariate(3.0) - 1.5)))

    def jitter_ns(self) -> int:
        return self._sample()

    def one_way_ns(self) -> int:
        return max(0, self.owd_ns + self._sample())

    def setup_ns(self) -> int:
        """What a new connection waits before its first byte may leave: the handshakes' round trips."""
        if self.rtt_ns == 0 and not self.spec.jitter.active:
            return 0
        return sum(max(0, self.rtt_ns + self._sample() + self._sample()) for _ in range(self.spec.setup_rtts))

    def serialise(self, direction: int, ready_ns: int, nbytes: int) -> int:
        """When the last bit of ``nbytes`` is on the wire, if it may start at ``ready_ns``."""
        if self._bits_ns is None:
            return ready_ns
        start = max(ready_ns, self._free_ns[direction])
        end = start + math.ceil(nbytes * 8 * self._bits_ns)
        self._free_ns[direction] = end
        return end

    @property
    def delays(self) -> bool:
        return self.owd_ns > 0 or self.spec.jitter.active or self._bits_ns is not None


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Pipe:
    """One direction of one relayed connection: source side -> destination side."""

    __slots__ = ("_backlog", "_conn", "_dest_blocked", "_direction", "_last_ns", "_queued", "_source_paused",
                 "dest", "eof_delivered", "not_before_ns", "source")

    def __init__(self, conn: _Connection, direction: int) -> None:
        self._conn = conn
        self._direction = direction
        self.source: asyncio.Transport | None = None
        self.dest: asyncio.Transport | None = None
        self._backlog: list[bytes] | None = []  # written before the destination connected
        self._last_ns = 0
        self._queued = 0
        self._dest_blocked = False
        self._source_paused = False
        self.not_before_ns = 0
        self.eof_delivered = False

    # source side --------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        model = self._conn.model
        now = time.monotonic_ns()
        if not model.delays and self.not_before_ns == 0 and self._queued == 0:
            self._write(data)
            return
        ready = model.serialise(self._direction, max(now, self.not_before_ns), len(data))
        when = max(ready + model.one_way_ns(), self._last_ns)
        self._last_ns = when
        self._queued += len(data)
        self._conn.scheduler.call_at(when, self._deliver, data)
        if self._queued > MAX_QUEUED:
            self._update_reading()

    def feed_eof(self) -> None:
        """The source half-closed: the destination sees it after the last byte, one way later."""
        when = max(time.monotonic_ns() + self._conn.model.owd_ns, self._last_ns)
        self._last_ns = when
        self._conn.scheduler.call_at(when, self._deliver_eof)

    # destination side ---------------------------------------------------------
    def connected(self, dest: asyncio.Transport) -> None:
        self.dest = dest
        backlog, self._backlog = self._backlog or [], None
        for data in backlog:
            dest.write(data)
        if self.eof_delivered:
            self._write_eof()

    def dest_blocked(self, blocked: bool) -> None:
        self._dest_blocked = blocked
        self._update_reading()

    # internals ----------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        self._queued -= len(data)
        self._write(data)
        if self._source_paused and self._queued < RESUME_QUEUED:
            self._update_reading()

    def _write(self, data: bytes) -> None:
        if self.dest is None:
            if self._backlog is not None:
                self._backlog.append(data)
        elif not self.dest.is_closing():
            self.dest.write(data)

    def _deliver_eof(self) -> None:
        self.eof_delivered = True
        if self.dest is not None:
            self._write_eof()
        self._conn.maybe_finished()

    def _write_eof(self) -> None:
        dest = self.dest
        if dest is None or dest.is_closing():
            return
        if dest.can_write_eof():
            dest.write_eof()
        else:
            dest.close()

    def _update_reading(self) -> None:
        source = self.source
        if source is None or source.is_closing():
            return
        pause = self._dest_blocked or self._queued > MAX_QUEUED or (self._source_paused and self._queued >= RESUME_QUEUED)
        if pause and not self._source_paused:
            self._source_paused = True
            source.pause_reading()
        elif not pause and self._source_paused:
            self._source_paused = False
            source.resume_reading()


class _Connection:
    """A client connection and its backend connection; ``up`` carries client -> backend bytes."""

    def __init__(self, relay: Relay, upstream: tuple[str, int]) -> None:
        self.relay = relay
        self.model = relay.model
        self.scheduler = relay.scheduler
        self.upstream = upstream
        self.up = _Pipe(self, 0)
        self.down = _Pipe(self, 1)
        self.client: asyncio.Transport | None = None
        self.backend: asyncio.Transport | None = None
        self.closed = False

    def client_connected(self, transport: asyncio.Transport) -> None:
        self.client = transport
        _nodelay(transport)
        self.up.source = transport
        self.down.connected(transport)
        setup = self.model.setup_ns()
        if setup:
            self.up.not_before_ns = time.monotonic_ns() + setup
        self.relay.connections.add(self)
        self.relay.accepted += 1
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: _BackendSide(self), *self.upstream)
        except OSError as exc:
            self.relay.failed += 1
            self.relay.log(f"cannot reach {self.upstream[0]}:{self.upstream[1]}: {exc.strerror or exc}")
            self.abort()
            return
        if self.closed:
            transport.abort()
            return
        self.backend = transport
        _nodelay(transport)
        self.down.source = transport
        self.up.connected(transport)
        self.maybe_finished()

    def maybe_finished(self) -> None:
        if self.up.eof_delivered and self.down.eof_delivered:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.relay.connections.discard(self)
        for transport in (self.client, self.backend):
            if transport is not None and not transport.is_closing():
                transport.close()

    def abort(self) -> None:
        self.closed = True
        self.relay.connections.discard(self)
        for transport in (self.client, self.backend):
            if transport is not None:
                transport.abort()

    def lost(self, pipe: _Pipe, exc: Exception | None) -> None:
        """One side is gone: after what is in flight, so is the other (a reset aborts at once)."""
        if self.closed:
            return
        if exc is not None:
            self.abort()
            return
        if not pipe.eof_delivered:
            pipe.feed_eof()


class _ClientSide(asyncio.Protocol):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.client_connected(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.conn.up.feed(data)

    def eof_received(self) -> bool:
        self.conn.up.feed_eof()
        return True  # keep the other direction open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self.conn.up, exc)

    def pause_writing(self) -> None:
        self.conn.down.dest_blocked(True)

    def resume_writing(self) -> None:
        self.conn.down.dest_blocked(False)


class _BackendSide(asyncio.Protocol):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.conn.down.feed(data)

    def eof_received(self) -> bool:
        self.conn.down.feed_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self.conn.down, exc)

    def pause_writing(self) -> None:
        self.conn.up.dest_blocked(True)

    def resume_writing(self) -> None:
        self.conn.up.dest_blocked(False)


@dataclass(frozen=True)
class Route:
    """``listen`` port on ``host`` -> ``upstream_host:upstream_port``."""

    listen: int
    upstream_port: int
    host: str = "127.0.0.1"
    upstream_host: str = "127.0.0.1"


class Relay:
    """One link: its routes share the delay model (and the bandwidth cap)."""

    def __init__(self, name: str, spec: LinkSpec, routes: list[Route], seed: int | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.spec = spec
        self.routes = routes
        self.model = LinkModel(spec, seed)
        self._log = log
        self.connections: set[_Connection] = set()
        self.accepted = 0
        self.failed = 0
        self.servers: list[asyncio.Server] = []
        self._scheduler: Scheduler | None = None

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "the relay is not started"
        return self._scheduler

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(f"relay {self.name}: {message}")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._scheduler = Scheduler(loop)
        for route in self.routes:
            upstream = (route.upstream_host, route.upstream_port)
            server = await loop.create_server(
                lambda up=upstream: _ClientSide(_Connection(self, up)),  # type: ignore[misc]
                route.host, route.listen, reuse_address=True, backlog=1024,
            )
            self.servers.append(server)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.abort()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        if self._scheduler is not None:
            self._scheduler.close()

    def describe(self) -> str:
        spec = self.spec
        parts = [f"rtt {spec.rtt_s * 1e3:g} ms ({spec.rtt_s * 5e2:g} ms each way)"]
        if spec.jitter.active:
            parts.append(f"jitter {spec.jitter.distribution} sigma {spec.jitter.sigma_s * 1e3:g} ms")
        parts.append(f"new connections wait {spec.setup_rtts} RTT (TCP{'' if spec.tls == 'none' else ' + TLS ' + spec.tls})")
        if spec.bandwidth_bps is not None:
            parts.append(f"bandwidth {spec.bandwidth_bps / 1e6:g} Mbit/s")
        routes = ", ".join(f"{r.host}:{r.listen} -> {r.upstream_host}:{r.upstream_port}" for r in self.routes)
        timer = "timerfd" if self._scheduler is None or self._scheduler.precise else "event-loop timers (~1 ms accuracy)"
        return f"{routes}; {'; '.join(parts)}; {timer}"


def raise_priority() -> str:
    """Wake-ups on time even when other processes keep both cores busy: the kernel runs a
    waking real-time task at once, while a normal one may wait a few milliseconds for its
    turn. Lowest real-time priority (``SCHED_FIFO`` 1) when permitted, else ``nice -10``,
    else unchanged; returns which. The relay spends its time asleep, and its busy-wait is
    bounded by the wake-up lead (at most 0.5 ms per wake-up)."""
    policy = getattr(os, "SCHED_FIFO", None)
    if policy is not None:
        try:
            os.sched_setscheduler(0, policy | getattr(os, "SCHED_RESET_ON_FORK", 0), os.sched_param(1))
            return "real-time priority"
        except OSError:
            pass
    try:
        os.nice(-10)
        return "nice -10"
    except OSError:
        return "normal priority"


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve(name: str, spec: LinkSpec, routes: list[Route], seed: int | None = None, priority: bool = True) -> int:
    """Run a link's relay in the foreground until SIGTERM/SIGINT."""
    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    uv = install_uvloop()
    scheduling = raise_priority() if priority else "normal priority"

    async def main() -> int:
        relay = Relay(name, spec, routes, seed, log)
        try:
            await relay.start()
        except OSError as exc:
            log(f"relay {name}: cannot listen: {exc.strerror or exc}")
            return 1
        log(f"relay {name}: {relay.describe()}; {scheduling}{'' if uv else '; asyncio loop (uvloop not installed)'}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        sched = relay.scheduler
        late = [sched.lateness_us(q) for q in (0.01, 0.5, 0.99)]
        count, spun = len(sched.lateness), sched.spun_ns / 1e6
        await relay.stop()
        accuracy = (f"; deliveries vs their deadlines (last {count}): p1 {late[0]:+.0f} us, p50 {late[1]:+.0f} us, "
                    f"p99 {late[2]:+.0f} us; busy-waited {spun:.0f} ms in all" if late[0] is not None else "")
        log(f"relay {name}: stopped after {relay.accepted} connections ({relay.failed} could not reach the backend)"
            f"{accuracy}")
        return 0

    return asyncio.run(main())
