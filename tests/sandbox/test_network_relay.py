"""The latency relay over real loopback sockets: planted delay, order, half-close, connection
setup, jitter bounds, bandwidth cap, flow control, an unreachable backend."""

from __future__ import annotations

import hashlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest

from sandbox.network.profile import Jitter, LinkSpec
from sandbox.network.relay import LinkModel
from tests.sandbox.network_helpers import (
    ROOT,
    connect,
    echo,
    free_port,
    median,
    recv_all,
    recv_exactly,
    relay,
    round_trip_ms,
    tcp_server,
)

R_MS = 30.0


def test_planted_delay_matches_the_rtt() -> None:
    """Per request, the relay adds the RTT (half each way) to what a 0-RTT relay costs: P50 within 2 ms."""
    with tcp_server(echo) as backend, relay(backend) as zero, relay(backend, "--rtt", f"{R_MS:g}ms") as delayed:
        a, b = connect(zero), connect(delayed)
        round_trip_ms(a), round_trip_ms(b)  # connection setup out of the way
        base, slow = [], []
        for _ in range(40):  # interleaved: both see the same machine
            base.append(round_trip_ms(a))
            slow.append(round_trip_ms(b))
            time.sleep(0.002)
        a.close()
        b.close()
    planted = median(slow) - median(base)
    assert abs(planted - R_MS) < 2.0, (planted, median(base), median(slow))
    assert min(slow) >= R_MS - 0.5  # never early


def test_each_direction_keeps_its_order_under_jitter() -> None:
    """Jitter larger than the gaps between chunks: still one ordered byte stream each way."""
    with tcp_server(echo) as backend, relay(backend, "--rtt", "10ms", "--jitter", "normal:5ms", "--seed", "7") as port:
        sock = connect(port)
        messages = [f"{i:06d};".encode() for i in range(600)]
        for m in messages:
            sock.sendall(m)
            time.sleep(0.0002)  # separate chunks, not one coalesced write
        sent = b"".join(messages)
        assert recv_exactly(sock, len(sent)) == sent
        sock.close()


def test_half_close_is_forwarded_in_order_and_the_other_direction_stays_open() -> None:
    def count_then_reply(conn: socket.socket) -> None:
        got = len(recv_all(conn))  # until the client's EOF
        conn.sendall(f"got {got}".encode())
        conn.shutdown(socket.SHUT_WR)

    with tcp_server(count_then_reply) as backend, relay(backend, "--rtt", "20ms") as port:
        sock = connect(port)
        start = time.perf_counter()
        sock.sendall(b"a" * 5000)
        sock.shutdown(socket.SHUT_WR)  # half-close: the reply must still come back
        reply = recv_all(sock)
        elapsed = (time.perf_counter() - start) * 1e3
        sock.close()
    assert reply == b"got 5000"
    # TCP handshake (1 RTT) + data and EOF one way + reply one way
    assert elapsed >= 40 - 1, elapsed


def test_server_half_close_keeps_the_client_direction_open() -> None:
    received = threading.Event()
    got: list[bytes] = []

    def greet_then_read(conn: socket.socket) -> None:
        conn.sendall(b"hello")
        conn.shutdown(socket.SHUT_WR)
        data = recv_all(conn)
        if data:  # not the readiness probe's empty connection
            got.append(data)
            received.set()

    with tcp_server(greet_then_read) as backend, relay(backend, "--rtt", "10ms") as port:
        sock = connect(port)
        assert recv_all(sock) == b"hello"  # the server's data, then its EOF
        sock.sendall(b"still here")
        sock.shutdown(socket.SHUT_WR)
        assert received.wait(10)
        sock.close()
    assert got == [b"still here"]


@pytest.mark.parametrize(("tls", "setup_rtts"), [("none", 1), ("1.3", 2), ("1.2", 3)])
def test_a_new_connection_pays_the_handshakes(tls: str, setup_rtts: int) -> None:
    """First request on a new connection: setup (TCP, + TLS) then its own round trip; the next one, 1 RTT."""
    rtt = 25.0
    with tcp_server(echo) as backend, relay(backend, "--rtt", f"{rtt:g}ms", "--tls", tls) as port:
        firsts, seconds = [], []
        for _ in range(3):
            sock = connect(port)
            firsts.append(round_trip_ms(sock))
            seconds.append(round_trip_ms(sock))
            sock.close()
    assert abs(median(firsts) - (setup_rtts + 1) * rtt) < 5, firsts
    assert abs(median(seconds) - rtt) < 3, seconds


@pytest.mark.parametrize("distribution", ["normal", "uniform", "pareto"])
def test_jitter_is_zero_mean_bounded_and_has_the_given_sigma(distribution: str) -> None:
    spec = LinkSpec(rtt_s=0.1, jitter=Jitter(distribution, 0.004))
    model = LinkModel(spec, seed=11)
    samples = [model.jitter_ns() / 1e6 for _ in range(40_000)]
    lo, hi = (b * 1e3 for b in spec.jitter.bounds_s())
    assert lo <= min(samples) and max(samples) <= hi
    assert abs(statistics.fmean(samples)) < 0.15 * 4
    assert 0.8 * 4 < statistics.pstdev(samples) < 1.15 * 4
    one_way = [model.one_way_ns() / 1e6 for _ in range(1000)]
    assert min(one_way) >= 50 + lo and max(one_way) <= 50 + hi


def test_jitter_on_the_wire_stays_within_its_bounds() -> None:
    with tcp_server(echo) as backend, relay(backend, "--rtt", "20ms", "--jitter", "normal:2ms") as port:
        sock = connect(port)
        round_trip_ms(sock)
        samples = [round_trip_ms(sock) for _ in range(60)]
        sock.close()
    # each way 10 ms +- 3 sigma (6 ms); the machine may add, never subtract
    assert min(samples) >= 20 - 12 - 0.5, min(samples)
    assert max(samples) <= 20 + 12 + 15, max(samples)  # generous: a loaded machine's scheduling
    assert statistics.pstdev(samples) > 0.8  # the jitter is there (two samples of sigma 2 ms per trip)


def test_bandwidth_cap_is_shared_by_the_link() -> None:
    def sink(conn: socket.socket) -> None:
        conn.sendall(str(len(recv_all(conn))).encode())

    size = 100_000  # 0.8 Mbit: 400 ms at 2 Mbit/s
    with tcp_server(sink) as backend, relay(backend, "--bandwidth", "2mbit") as port:
        def upload(n: int, out: list[bytes]) -> None:
            sock = connect(port)
            sock.sendall(os.urandom(n))
            sock.shutdown(socket.SHUT_WR)
            out.append(recv_all(sock))
            sock.close()

        one: list[bytes] = []
        start = time.perf_counter()
        upload(size, one)
        single = time.perf_counter() - start

        two: list[bytes] = []
        threads = [threading.Thread(target=upload, args=(size // 2, two)) for _ in range(2)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        shared = time.perf_counter() - start
    assert one == [str(size).encode()] and sorted(two) == [str(size // 2).encode()] * 2
    assert 0.4 * 0.9 < single < 0.4 * 1.3, single
    assert 0.4 * 0.9 < shared < 0.4 * 1.3, shared  # two connections split the same 2 Mbit/s


def test_a_large_transfer_arrives_intact_through_flow_control() -> None:
    """More than the relay's in-flight limit, both ways at once, with a delay: no loss, no deadlock."""
    data = os.urandom(12 * 1024 * 1024)
    with tcp_server(echo) as backend, relay(backend, "--rtt", "10ms") as port:
        sock = connect(port)
        sender = threading.Thread(target=lambda: (sock.sendall(data), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        back = recv_all(sock)
        sender.join(30)
        sock.close()
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()


def test_an_unreachable_backend_closes_the_client_and_the_relay_keeps_serving() -> None:
    dead = free_port()
    with relay(dead, "--rtt", "5ms") as port:
        for _ in range(2):
            sock = connect(port)
            try:
                sock.sendall(b"anyone?")
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
            sock.close()


def test_relay_cli_rejects_bad_options_in_one_line() -> None:
    for bad in (["--route", "54401"], ["--route", "1=127.0.0.1:2", "--rtt", "80"],
                ["--route", "1=127.0.0.1:2", "--jitter", "gauss:1ms"], ["--route", "1=127.0.0.1:2", "--bandwidth", "fast"]):
        p = subprocess.run([sys.executable, "-m", "sandbox", "relay", *bad], cwd=ROOT, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (bad, p.stderr)
        assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
