"""The network relay: what it costs per request, how many requests it carries, how exact its delay is.

Three processes, as in the sandbox: a backend (answers each 300-byte request with
2 KB, about a lookup's size), the relay (``python -m sandbox relay``, started as
the launcher starts it) and this client. In the same run:

* **overhead**: one keep-alive connection, sequential requests, direct to the
  backend vs through a 0-RTT relay, in alternating slices; ``overhead`` =
  P50(relay) - P50(direct);
* **throughput**: closed loop over many connections for a few seconds, direct
  vs through the 0-RTT relay, and through a 20 ms relay with enough connections
  for thousands of requests per second; the relay's CPU time per request comes
  from ``/proc/<pid>/stat``;
* **accuracy**: the planted delay at RTT R, per request: ``t - R - P50(0-RTT
  relay)``, in alternating slices with the 0-RTT relay; its P50 and P95, for
  R = 1, 20 and 100 ms on one connection, and at 20 ms under a demo-like rate
  (10 connections, ~500 req/s); plus the relay's own report of how late its
  deliveries ran (from its log when it stops).

Usage: ``python -m bench.bench_relay [--seconds 4] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUEST = 300
RESPONSE = 2048


# the backend -------------------------------------------------------------------
class _Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = 0
        self.reply = b"r" * RESPONSE

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        while self.pending >= REQUEST:
            self.pending -= REQUEST
            self.transport.write(self.reply)


def serve_backend(port: int) -> int:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Answer, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(main())
    return 0


# processes ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: a benchmark process exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"error: nothing listens on {port}")


@dataclass
class Proc:
    name: str
    port: int
    proc: subprocess.Popen[str]
    log: str = ""

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            _, self.log = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def start_backend() -> Proc:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_relay", "--serve", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_port(port, proc)
    return Proc("backend", port, proc)


def start_relay(upstream: int, rtt_ms: float) -> Proc:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "relay", "--link", f"bench-{rtt_ms:g}ms", "--route",
         f"{port}=127.0.0.1:{upstream}", "--rtt", f"{rtt_ms:g}ms"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    wait_port(port, proc)
    return Proc(f"relay {rtt_ms:g} ms", port, proc)


# the client --------------------------------------------------------------------
class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.request = b"q" * REQUEST

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(reader, writer)
        await conn.call()  # connection setup out of the way
        return conn

    async def call(self) -> float:
        start = time.perf_counter()
        self.writer.write(self.request)
        await self.reader.readexactly(RESPONSE)
        return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self.writer.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sequential(ports: dict[str, int], per_slice: int, rounds: int, gap_s: float = 0.001) -> dict[str, list[float]]:
    """Alternating slices of sequential requests, one connection per path."""
    conns = {name: await Conn.open(port) for name, port in ports.items()}
    out: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, conn in conns.items():
            for _ in range(per_slice):
                out[name].append(await conn.call())
                await asyncio.sleep(gap_s)
    for conn in conns.values():
        conn.close()
    return out


async def closed_loop(port: int, connections: int, seconds: float) -> tuple[int, list[float]]:
    conns = [await Conn.open(port) for _ in range(connections)]
    stop = time.perf_counter() + seconds
    samples: list[float] = []

    async def worker(conn: Conn) -> None:
        while time.perf_counter() < stop:
            samples.append(await conn.call())

    await asyncio.gather(*(worker(c) for c in conns))
    for conn in conns:
        conn.close()
    return len(samples), samples


async def paced(port: int, connections: int, seconds: float, interval_s: float) -> list[float]:
    """``connections`` connections, each sending a request every ``interval_s`` (a demo-like open rate)."""
    conns = [await Conn.open(port) for _ in range(connections)]
    samples: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker(conn: Conn, offset: float) -> None:
        await asyncio.sleep(offset)
        nxt = time.perf_counter()
        while time.perf_counter() < stop:
            samples.append(await conn.call())
            nxt += interval_s
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

    await asyncio.gather(*(worker(c, i * interval_s / connections) for i, c in enumerate(conns)))
    for conn in conns:
        conn.close()
    return samples


@dataclass
class Results:
    overhead: dict[str, list[float]] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    lateness: dict[float, tuple[str, str]] = field(default_factory=dict)  # RTT -> relay-side p50, p99 (us)


async def run(args: argparse.Namespace) -> Results:
    res = Results()
    backend = start_backend()
    zero = start_relay(backend.port, 0)
    delayed = {rtt: start_relay(backend.port, rtt) for rtt in (1.0, 20.0, 100.0)}
    busy = start_relay(backend.port, 20.0)  # throughput: its own relay, so the accuracy relays' logs stay clean
    try:
        # overhead
        res.overhead = await sequential({"direct": backend.port, "relay 0 ms": zero.port}, 100, 10)

        # throughput
        for label, proc, conns in (("direct", None, 64), ("relay 0 ms", zero, 64), ("relay 20 ms", busy, 256)):
            port = backend.port if proc is None else proc.port
            cpu0 = proc.cpu_seconds() if proc else 0.0
            count, samples = await closed_loop(port, conns, args.seconds)
            cpu = (proc.cpu_seconds() - cpu0) if proc else None
            res.throughput.append({
                "path": label, "connections": conns, "rps": count / args.seconds, "p50": pct(samples, 0.5),
                "p95": pct(samples, 0.95), "cpu_us": None if cpu is None else cpu / count * 1e6,
                "cpu_share": None if cpu is None else cpu / args.seconds,
            })

        # accuracy, one connection
        for rtt, rounds, per_slice in ((1.0, 8, 50), (20.0, 8, 25), (100.0, 6, 10)):
            got = await sequential({"zero": zero.port, "delayed": delayed[rtt].port}, per_slice, rounds)
            base = statistics.median(got["zero"])
            errors = [t - rtt - base for t in got["delayed"]]
            res.accuracy.append({"rtt": rtt, "load": "1 connection, sequential", "n": len(errors),
                                 "p50": pct(errors, 0.5), "p95": pct(errors, 0.95)})
        # accuracy at a demo-like rate: 10 connections x 50 req/s
        base_samples = await paced(zero.port, 10, args.seconds, 0.02)
        loaded = await paced(delayed[20.0].port, 10, args.seconds, 0.02)
        base = statistics.median(base_samples)
        errors = [t - 20.0 - base for t in loaded]
        res.accuracy.append({"rtt": 20.0, "load": f"10 connections, {len(loaded) / args.seconds:.0f} req/s",
                             "n": len(errors), "p50": pct(errors, 0.5), "p95": pct(errors, 0.95)})
    finally:
        for proc in (*delayed.values(), busy, zero, backend):
            proc.stop()
    for rtt, proc in delayed.items():
        m = re.search(r"\): p1 \S+ us, p50 (\S+) us, p99 (\S+) us", proc.log)
        res.lateness[rtt] = (m.group(1), m.group(2)) if m else ("-", "-")
    return res


def tables(res: Results) -> str:
    d, r = res.overhead["direct"], res.overhead["relay 0 ms"]
    lines = [
        "| path | requests | p50 ms | p95 ms | overhead p50 |",
        "|---|---:|---:|---:|---:|",
        f"| direct | {len(d)} | {pct(d, 0.5):.3f} | {pct(d, 0.95):.3f} |  |",
        f"| relay, 0 ms | {len(r)} | {pct(r, 0.5):.3f} | {pct(r, 0.95):.3f} | {pct(r, 0.5) - pct(d, 0.5):+.3f} ms |",
        "",
        "| path | connections | req/s | p50 ms | p95 ms | relay CPU per request | relay CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in res.throughput:
        cpu = "" if t["cpu_us"] is None else f"{t['cpu_us']:.0f} us"
        share = "" if t["cpu_share"] is None else f"{t['cpu_share'] * 100:.0f} %"
        lines.append(f"| {t['path']} | {t['connections']} | {t['rps']:.0f} | {t['p50']:.2f} | {t['p95']:.2f} | {cpu} | {share} |")
    lines += ["", "| RTT | load | requests | error p50 ms | error p95 ms | relay's deliveries vs deadline, p50 / p99 (its whole run) |",
              "|---:|---|---:|---:|---:|---:|"]
    for a in res.accuracy:
        p50, p99 = res.lateness.get(a["rtt"], ("-", "-"))
        lines.append(f"| {a['rtt']:g} ms | {a['load']} | {a['n']} | {a['p50']:+.3f} | {a['p95']:+.3f} | {p50} / {p99} us |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def write_docs(text: str, command: str, load: tuple[float, float]) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    header = "## Network relay"
    section = (
        f"{header}\n\n"
        "The sandbox's latency relay (`python -m sandbox relay`, asyncio + uvloop, deadlines on a timerfd) "
        "between a client and a backend that answers each 300-byte request with 2 KB, three processes on "
        "127.0.0.1. `overhead p50` = P50 through a 0-RTT relay - P50 direct (one connection, alternating "
        "slices). Throughput: closed loop over many connections; relay CPU from `/proc`. Accuracy: per "
        "request, `t - R - P50(0-RTT relay)` (what the relay planted minus what was asked), alternating "
        "with the 0-RTT relay; target: |P50 error| <= 0.2 ms on an idle machine.\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {machine()}; load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} "
        "(a shared machine: absolute numbers move with the background load).\n\n"
        f"{text}\n\n"
        "Reading: the relay's own deliveries land within tens of microseconds of their deadlines (last "
        "column: the timerfd, a wake-up lead of at most 100 us, a bounded busy-wait). The error column adds what "
        "happens outside the relay's schedule: the client, the backend and the relay itself sleep through the "
        "delay, and a process woken after a long wait wakes slower than after the sub-millisecond waits of the "
        "0-RTT baseline (on this VM, a process woken by a socket after 20-100 ms idle took ~60 us at P50, after "
        "0.5 ms ~17 us); a delayed request has four such wake-ups, more under background load (a process waiting "
        "on a real network pays the same). Each relayed request costs the relay 20-40 us of CPU, so one relay carries thousands of "
        "requests per second, far above the demo's ~200 lookups/s (about 600 requests/s over all links).\n"
    )
    if header in current:
        start = current.index(header)
        nxt = current.find("\n## ", start + len(header))
        current = current[:start] + section + (current[nxt + 1:] if nxt != -1 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + section
    path.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per throughput and loaded-accuracy cell")
    parser.add_argument("--write-docs", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the backend process
    args = parser.parse_args(argv)
    if args.serve:
        return serve_backend(args.serve)
    import uvloop

    load_start = os.getloadavg()[0]
    res = uvloop.run(run(args))
    text = tables(res)
    print(text)
    if args.write_docs:
        command = "python -m bench.bench_relay --write-docs" + (f" --seconds {args.seconds:g}" if args.seconds != 4.0 else "")
        write_docs(text, command, (load_start, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
