"""A TCP flood against a DNS server, run as a process of its own so that its
work does not delay the client a test times (``python -m
tests.integration.tcpflood HOST PORT [options]``). Plain non-blocking
sockets on one ``epoll``: cheap enough per connection that the server, not
this process, sets the pace.

Two kinds of attackers, each from its own loopback source addresses
(127.0.0.0/8 is all loopback on Linux):

* idle: ``--idle-sources`` addresses (127.0.1.1 on) times ``--per-source``
  connections that never send a byte; each one the server closes is opened
  again ``--reopen-after`` seconds later, so the flood holds as many as the
  server lets it (the issue's attacker reopened its sockets every 10 s; a
  flood of new connections with no pause at all is a connection-rate
  attack, which belongs to a rate limit in front of the server);
* non-reading: ``--nonreaders`` connections (127.0.2.1 on), each sending
  pipelined queries as fast as the socket takes them and never reading an
  answer (its own send buffer small, ``NONREADER_SNDBUF``, so that a stall
  of the server's reading shows at once); ended by the server, each is
  opened again at once.

Every ``REPORT_S`` seconds, and once more at the end (after ``--seconds``
or on SIGTERM), it prints one JSON line: ``idle_open`` (idle connections
open now), ``idle_peak`` (most open at once), ``idle_opened`` and
``idle_closed`` (by the server: evicted or timed out), totals since the
start; ``nonreader_open``; ``nonreader_lives``: for each non-reading
connection the server ended since the last line, ``[seconds from connect
to end, seconds from the start of its last stall (nothing more accepted by
the socket) to end or null, how it ended ("eof", "reset", or the error's
name), bytes of queries sent]`` (a stall is retried every 10 ms, so it
counts from the last byte the socket took); ``done`` on the last line.
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import resource
import select
import signal
import socket
import struct
import sys
import time

import dns.message

REPORT_S = 0.25
#: Bytes of send buffer asked for each non-reading connection.
NONREADER_SNDBUF = 8192


def query_frames(count: int) -> bytes:
    """``count`` length-framed queries (RFC 1035 section 4.2.2), one after
    another."""
    wire = dns.message.make_query("static.gslb.example.test.", "A").to_wire()
    return (struct.pack("!H", len(wire)) + wire) * count


class Conn:
    __slots__ = ("offset", "reader", "sent", "since", "sock", "source", "stalled")

    def __init__(self, source: str, reader: bool) -> None:
        self.source, self.reader = source, reader
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if not reader:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, NONREADER_SNDBUF)
        self.sock.setblocking(False)
        self.sock.bind((source, 0))
        self.since = time.monotonic()
        self.stalled: float | None = None
        self.sent = 0
        self.offset = 0  # into the burst: a send may take part of it


class Flood:
    def __init__(self, host: str, port: int, reopen_after_s: float) -> None:
        self.address = (host, port)
        self.reopen_after_s = reopen_after_s
        self.reopen: collections.deque[tuple[float, str]] = collections.deque()
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.idle_open = self.idle_peak = self.idle_opened = self.idle_closed = 0
        self.nonreader_open = 0
        self.lives: list[tuple[float, float | None, str, int]] = []
        self.burst = memoryview(query_frames(64))

    def open(self, source: str, idle: bool) -> None:
        conn = Conn(source, idle)
        err = conn.sock.connect_ex(self.address)
        if err not in (0, errno.EINPROGRESS):
            conn.sock.close()
            return
        fd = conn.sock.fileno()
        self.conns[fd] = conn
        # idle: only hear of the end (EOF, reset); non-reading: write, and hear of the end
        self.epoll.register(fd, (select.EPOLLRDHUP | select.EPOLLIN) if idle
                            else (select.EPOLLRDHUP | select.EPOLLOUT))
        if idle:
            self.idle_open += 1
            self.idle_opened += 1
            self.idle_peak = max(self.idle_peak, self.idle_open)
        else:
            self.nonreader_open += 1

    def ended(self, fd: int, how: str) -> None:
        conn = self.conns.pop(fd)
        self.epoll.unregister(fd)
        conn.sock.close()
        now = time.monotonic()
        if conn.reader:
            self.idle_open -= 1
            self.idle_closed += 1
            self.reopen.append((now + self.reopen_after_s, conn.source))
        else:
            self.nonreader_open -= 1
            stall = None if conn.stalled is None else round(now - conn.stalled, 3)
            self.lives.append((round(now - conn.since, 3), stall, how, conn.sent))
            self.open(conn.source, idle=False)

    def reopen_due(self) -> None:
        now = time.monotonic()
        while self.reopen and self.reopen[0][0] <= now:
            self.open(self.reopen.popleft()[1], idle=True)

    def pump(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            while True:
                sent = conn.sock.send(self.burst[conn.offset:])
                conn.sent += sent
                conn.offset = (conn.offset + sent) % len(self.burst)
                conn.stalled = None
        except BlockingIOError:
            if conn.stalled is None:
                conn.stalled = time.monotonic()
        except OSError as exc:
            self.ended(fd, "reset" if isinstance(exc, ConnectionResetError)
                       else type(exc).__name__)

    def try_stalled(self) -> None:
        """Try the stalled non-reading connections again, whether or not
        epoll says they are writable (it waits for a third of the buffer
        to be free), so that a stall is counted from the last byte the
        socket took."""
        for fd, conn in list(self.conns.items()):
            if not conn.reader and conn.stalled is not None:
                self.pump(fd)

    def event(self, fd: int, mask: int) -> None:
        conn = self.conns.get(fd)
        if conn is None:
            return
        if mask & (select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP | select.EPOLLIN):
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == errno.ECONNRESET:
                self.ended(fd, "reset")
            elif err:
                self.ended(fd, errno.errorcode.get(err, str(err)))
            elif conn.reader or mask & (select.EPOLLRDHUP | select.EPOLLHUP):
                self.ended(fd, "eof")
            return
        if mask & select.EPOLLOUT:
            self.pump(fd)

    def report(self, done: bool = False) -> None:
        line = {"idle_open": self.idle_open, "idle_peak": self.idle_peak,
                "idle_opened": self.idle_opened, "idle_closed": self.idle_closed,
                "nonreader_open": self.nonreader_open, "nonreader_lives": self.lives,
                "done": done}
        self.lives = []
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


def run(args: argparse.Namespace) -> None:
    flood = Flood(args.host, args.port, args.reopen_after)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    for s in range(args.idle_sources):
        for _ in range(args.per_source):
            flood.open(f"127.0.1.{s + 1}", idle=True)
    for n in range(args.nonreaders):
        flood.open(f"127.0.2.{n + 1}", idle=False)
    deadline = time.monotonic() + args.seconds
    next_report = time.monotonic() + REPORT_S
    while not stop and time.monotonic() < deadline:
        for fd, mask in flood.epoll.poll(0.01):
            flood.event(fd, mask)
        flood.reopen_due()
        flood.try_stalled()
        if time.monotonic() >= next_report:
            flood.report()
            next_report += REPORT_S
    flood.report(done=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--idle-sources", type=int, default=100)
    parser.add_argument("--per-source", type=int, default=10)
    parser.add_argument("--nonreaders", type=int, default=20)
    parser.add_argument("--reopen-after", type=float, default=0.5, metavar="S")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run(args)


if __name__ == "__main__":
    main()
