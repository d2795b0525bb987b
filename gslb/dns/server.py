"""UDP and TCP listeners: bytes in, bytes out, no DNS logic.

A ``Handler`` takes the query bytes, the client's address (text) and whether
the query came over UDP, and returns the response bytes or None (no answer;
over TCP the connection is then closed). It must not raise
(``gslb.answering.Answering.handle`` answers SERVFAIL instead); if it does,
the listener logs the traceback and goes on without answering that query.
UDP is read and sent in batches by the compiled packet path
(``gslb.dns._packets``: ``recvmmsg``/``sendmmsg``, and answer-cache hits
answered without a Python call per query, :class:`CachedAnswers`) where it
is built, else by the pure-Python listener, which answers alike byte for
byte (:func:`compiled_path`).
TCP uses the 2-octet length framing of RFC 1035 section 4.2.2, accepts
several queries per connection (pipelined: RFC 7766 section 6.2.1.1) and
keeps its connections from being starved by any client (:class:`TcpLimits`):
a limit per client address, a write timeout for clients that do not read
their answers, an idle timeout, and, when the listener is full, the
connection idle longest closed to admit a new one (RFC 7766 section 6.2.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import logging
import os
import resource
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

log = logging.getLogger("gslb.dns")

Handler = Callable[[bytes, str, bool], bytes | None]

#: Seconds a TCP connection may wait for its next complete query (or its
#: first) before the server closes it (RFC 7766 section 6.2.3). Bytes of an
#: unfinished query do not count as activity, so a client trickling a query
#: byte by byte is closed as well.
TCP_IDLE_TIMEOUT_S = 10.0
#: Concurrent TCP connections per :class:`DnsServer` (per process: each
#: ``gslb serve --workers`` worker has its own). When full, the connection
#: idle longest is closed to admit a new one; with none idle, the new one is
#: closed at once.
MAX_TCP_CLIENTS = 512
#: Concurrent TCP connections from one client address; a further one is
#: closed at once. RFC 7766 section 6.2.2 asks clients for one connection per
#: server; 16 leaves room for resolvers sharing an address behind a NAT,
#: while one address can hold no more than 1/32 of ``MAX_TCP_CLIENTS``.
TCP_PER_SOURCE = 16
#: Seconds from the moment answers first wait for a client that does not
#: read them (the kernel's send buffer full) until the connection is reset,
#: unless it has been idle again since (every answer sent, no query left).
#: Meanwhile no further query of that connection is read.
TCP_WRITE_TIMEOUT_S = 5.0
#: Bytes asked for each TCP connection's kernel send and receive buffers
#: (set on the listening socket, inherited by every connection; Linux
#: doubles the figure for its bookkeeping). Bounds what a client that stops
#: reading can leave queued in the kernel, instead of Linux's autotuned
#: megabytes; a whole 65,535-byte response still fits.
TCP_SOCKET_BUFFER = 64 << 10
#: Connections the kernel may hold completed for the server to accept
#: (``listen`` backlog; Linux caps it at ``net.core.somaxconn``, 4096 by
#: default): a burst of connections waits there instead of having its SYNs
#: dropped, which costs a client a one-second retransmission.
TCP_BACKLOG = 1024
#: Queries of one connection answered per turn of the event loop before the
#: others get theirs (a pipelining client cannot hold the loop); their
#: answers leave in one write.
TCP_BATCH = 4
#: Bytes of answers after which a turn ends early (so that a batch of large
#: answers is not queued whole behind a client that does not read).
TCP_WRITE_CHUNK = 16 << 10
#: Seconds between two log lines about TCP connections refused, evicted or
#: reset (one line sums each period, never one per connection).
TCP_LOG_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """How a :class:`DnsServer` shares its TCP connections: ``clients``
    concurrent connections (when full, the one idle longest is closed to
    admit a new one, RFC 7766 section 6.2.3; with none idle the new one is
    closed), ``per_source`` concurrent connections from one client address
    (IPv6: one /64, :func:`source_of`; a further one is closed at once),
    ``idle_s`` seconds waiting for the next complete query before the server
    closes the connection, and
    ``write_timeout_s`` seconds from the moment answers first wait for a
    client that does not read them until the connection is reset (unless it
    was idle again meanwhile). Defaults: the module's
    ``MAX_TCP_CLIENTS``, ``TCP_PER_SOURCE``, ``TCP_IDLE_TIMEOUT_S`` and
    ``TCP_WRITE_TIMEOUT_S``. Raises ``ValueError`` for a count below 1 or a
    time not above 0."""

    clients: int = MAX_TCP_CLIENTS
    per_source: int = TCP_PER_SOURCE
    idle_s: float = TCP_IDLE_TIMEOUT_S
    write_timeout_s: float = TCP_WRITE_TIMEOUT_S

    def __post_init__(self) -> None:
        for what, value in (("connections", self.clients),
                            ("connections per client address", self.per_source)):
            if value < 1:
                raise ValueError(f"TCP {what}: must be at least 1, not {value}")
        for what, seconds in (("idle timeout", self.idle_s),
                              ("write timeout", self.write_timeout_s)):
            if not seconds > 0:
                raise ValueError(f"TCP {what}: must be above 0 seconds, not {seconds}")


#: File descriptors a server wants beyond its TCP connections: listeners,
#: evicted connections still closing, health checks, Redis, the admin server.
SPARE_FILES = 256


def raise_open_files(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to ``needed`` file
    descriptors when it is lower (up to the hard limit: Debian's default
    soft limit, 1024, would otherwise cap the TCP connections); returns the
    soft limit now. Logs a warning when the hard limit is below
    ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if soft < needed:
            log.warning("open files limited to %d (RLIMIT_NOFILE hard limit), below the %d "
                        "the TCP connection limit wants: raise it (LimitNOFILE= under systemd)",
                        soft, needed)
    return soft


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``ADDR:PORT`` (IPv6 in brackets: ``[::1]:5353``) into
    ``(address, port)``. Raises ``ValueError`` on bad input."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:5353")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: put IPv6 addresses in brackets, [::1]:53")
    socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    return host, int(port)


#: Datagrams read per wake-up of the event loop: draining the socket in a
#: batch costs one selector round per batch instead of one per query.
UDP_BATCH = 64
#: Receive buffer asked for on each UDP socket, bytes. Linux's default
#: (``net.core.rmem_default``, about 208 KiB) holds only a few hundred
#: queries (each datagram is charged its buffer's true size, about 1 KiB),
#: so a burst of queries arriving while the loop is busy is dropped by the
#: kernel. Asked with ``SO_RCVBUFFORCE`` when the process may (root or
#: CAP_NET_ADMIN), else with ``SO_RCVBUF``, which the kernel caps at
#: ``net.core.rmem_max`` (``deploy/sysctl-gslb.conf`` raises it).
UDP_RCVBUF = 4 << 20
#: Linux's ``SO_RCVBUFFORCE`` (``asm-generic/socket.h``); Python does not name it.
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def enlarge_receive_buffer(sock: socket.socket, size: int = UDP_RCVBUF) -> int:
    """Ask for a receive buffer of ``size`` bytes on ``sock`` (never shrink
    it); returns the size the kernel granted, bytes (``SO_RCVBUF`` as read
    back: Linux doubles the request for its bookkeeping)."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except OSError:  # not privileged: as much as net.core.rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


#: Tries at a port both UDP and TCP can have, when asked for port 0: the
#: free port UDP gets may be taken for TCP.
BIND_ATTEMPTS = 20


def bind_udp_tcp(host: str, port: int, *, reuse_port: bool = False,
                 receive_buffer: int | None = None) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to ``host`` (an IPv4 or IPv6 address,
    text) on one port: ``port``, or for 0 a free port both can have (up to
    ``BIND_ATTEMPTS`` tries). Returns ``(udp, tcp)``, bound, blocking, the
    TCP socket not yet listening (``listen`` it, or hand it to
    ``asyncio.start_server(sock=...)``); the caller closes them.

    Both sockets of an IPv6 address are ``IPV6_V6ONLY`` (an IPv4 listener
    on the same port is another socket); ``reuse_port``: ``SO_REUSEPORT`` on
    both, so several processes can bind the port and the kernel spreads
    queries over them; the TCP socket has ``SO_REUSEADDR`` (a restart binds
    despite connections in TIME_WAIT). ``receive_buffer``: bytes asked for
    the UDP receive buffer before binding (:func:`enlarge_receive_buffer`;
    None: the system's default).

    Raises ``OSError`` when ``host`` cannot be bound (not local, the UDP
    port in use, the TCP port in use for a fixed ``port``: the message then
    names the address) or no port is free for both; no socket is left
    open then.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _attempt in range(BIND_ATTEMPTS):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp: socket.socket | None = None
        try:
            tcp = socket.socket(family, socket.SOCK_STREAM)
            for sock in (udp, tcp):
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if receive_buffer is not None:
                enlarge_receive_buffer(udp, receive_buffer)
            udp.bind((host, port))
            if _bind_tcp(tcp, host, udp.getsockname()[1], fixed=bool(port)):
                return udp, tcp
        except BaseException:
            udp.close()  # e.g. the port is in use: no socket left behind
            if tcp is not None:
                tcp.close()
            raise
        udp.close()  # port 0: UDP got a port TCP cannot have; try another
        tcp.close()
    raise OSError(f"no port free for both UDP and TCP on {host}")


def _bind_tcp(tcp: socket.socket, host: str, port: int, fixed: bool) -> bool:
    """Bind ``tcp`` to ``(host, port)``; False when that fails and the port
    was not ``fixed`` (the caller tries another). Raises ``OSError`` naming
    the address for a fixed port (the words of ``asyncio.start_server``)."""
    address: tuple[str, int] | tuple[str, int, int, int] = (
        (host, port, 0, 0) if tcp.family == socket.AF_INET6 else (host, port))
    try:
        tcp.bind(address)
    except OSError as err:
        if not fixed:
            return False
        reason = (err.strerror or str(err)).lower()
        raise OSError(err.errno,
                      f"error while attempting to bind on address {address!r}: {reason}"
                      ) from None
    return True


#: Set to ``1`` to answer UDP on the pure-Python path where the compiled
#: one is built (``docs/performance.md``, "The compiled packet path").
NO_EXT_ENV = "GSLB_NO_EXT"


def compiled_path() -> ModuleType | None:
    """The compiled packet path, ``gslb.dns._packets``, or None: not built
    (no C compiler at install), or turned off by ``GSLB_NO_EXT=1`` (read
    on every call: each listener decides when it is bound)."""
    if os.environ.get(NO_EXT_ENV, "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("gslb.dns._packets")
    except ImportError:
        return None


class CachedAnswers(Protocol):
    """What the compiled packet path answers from: a process's answer
    cache (``gslb.answering.Answering``)."""

    def cached_table(self) -> tuple[dict[object, object], object] | None:
        """The answer cache's table now (``AnswerCache.table``) and how
        queries with a COOKIE option are answered from it (``serve``'s
        ``cookies``: None, to the handler; ``()``, cookies off; or ``(now,
        require, secrets, siphash)``), or None when every query must go to
        the handler."""

    def cached_served(self, hits: int, notes: list[tuple[object, int]],
                      seconds_each: float) -> None:
        """Count ``hits`` answers given from that table, by note (the
        ``Note`` stored beside each response) and how many times, each
        ``seconds_each`` seconds."""


#: What the compiled path looks queries up in when there is no table.
_NO_ENTRIES: dict[object, object] = {}


class _Udp:
    """A UDP listener read with ``loop.add_reader``, draining up to
    ``UDP_BATCH`` datagrams per wake-up, where asyncio's ``DatagramProtocol``
    path reads one datagram per selector round (the measured difference:
    docs/performance.md). Responses are sent with a non-blocking ``sendto``;
    when the socket buffer is full the response is dropped, as UDP may.

    With ``packets`` (:func:`compiled_path`), each wake-up is one call to
    ``packets.serve``: one ``recvmmsg`` for the batch, the hits of
    ``cached``'s table answered there, the rest given to ``handler`` in
    order, one ``sendmmsg`` for every response."""

    def __init__(self, sock: socket.socket, handler: Handler,
                 cached: CachedAnswers | None = None,
                 packets: ModuleType | None = None) -> None:
        self.sock = sock
        self.handler = handler
        self.cached = cached
        self.packets = packets
        sock.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(),
                             self._readable if packets is None else self._readable_batched)

    def _handle(self, data: bytes, who: str, udp: bool) -> bytes | None:
        """``handler``, its exceptions logged (the compiled path's handler)."""
        try:
            return self.handler(data, who, udp)
        except Exception:  # never let one packet stop the listener
            log.exception("query from %s failed", who)
            return None

    def _readable_batched(self) -> None:
        cached = self.cached
        table = None if cached is None else cached.cached_table()
        assert self.packets is not None
        entries, cookies = (_NO_ENTRIES, None) if table is None else table
        received, hits, notes, seconds = self.packets.serve(
            self.sock.fileno(), entries, self._handle, UDP_BATCH, cookies)
        if hits and cached is not None:
            cached.cached_served(hits, notes, seconds / received)

    def _readable(self) -> None:
        recvfrom, sendto, handler = self.sock.recvfrom, self.sock.sendto, self.handler
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP errors surfacing on Linux
                log.debug("UDP receive error: %s", exc)
                return
            try:
                response = handler(data, addr[0], True)
            except Exception:  # never let one packet stop the listener
                log.exception("query from %s failed", addr[0])
                continue
            if response is not None:
                try:
                    sendto(response, addr)
                except (BlockingIOError, InterruptedError):
                    log.debug("UDP send buffer full: response to %s dropped", addr[0])
                except OSError as exc:
                    log.debug("UDP send to %s failed: %s", addr[0], exc)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()



#: The prefix length an IPv6 client is counted under for
#: ``TcpLimits.per_source``: one host commonly has a whole /64 (RFC 7421),
#: so counting single addresses would let it open a limit per address.
IPV6_SOURCE_PREFIX = 64


def source_of(who: str) -> str:
    """The key a client address (text) is counted under for
    ``TcpLimits.per_source``: an IPv4 address itself, an IPv6 address's
    /``IPV6_SOURCE_PREFIX`` network (``"2001:db8:1:2::/64"``)."""
    if ":" not in who:
        return who
    try:
        return str(ipaddress.IPv6Network((who, IPV6_SOURCE_PREFIX), strict=False))
    except ValueError:  # not an address (a test's stand-in): itself
        return who


#: What a :class:`DnsServer` counts of its TCP connections, each a count of
#: connections: ``refused_per_source`` (closed at once: its client address
#: already had ``TcpLimits.per_source``), ``refused_full`` (closed at once:
#: the listener full and none of its connections idle), ``evicted`` (idle,
#: closed to admit a new one), ``write_timeouts`` (reset: the client did not
#: read its answers within ``write_timeout_s``), ``idle_timeouts`` (closed
#: after ``idle_s`` without a query).
TCP_COUNTERS = ("refused_per_source", "refused_full", "evicted", "write_timeouts",
                "idle_timeouts")


class _TcpConnection(asyncio.Protocol):
    """One TCP connection: queries framed by RFC 1035 section 4.2.2, answered
    in order as they arrive, several per connection (RFC 7766 section
    6.2.1.1), a turn's answers in one write. Answers the kernel cannot take
    at once (the client is not reading) stop the reading of further queries
    until they are sent (the transport's write-buffer limits are 0:
    ``pause_writing`` as soon as anything waits), so at most one turn's
    answers wait in this process per connection. ``write_timeout_s`` after
    answers first had to wait, unless the connection has been idle since,
    it is reset: a client reading a little now and then never letting its
    answers drain is reset as well. "Idle" (in the server's
    ``_idle``, evictable): no query being answered, nothing waiting to be
    sent."""

    __slots__ = ("blocked", "deferred", "eof", "held", "held_pos", "open", "pending", "server",
                 "source", "timer", "transport", "who")

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.who = ""
        self.source = ""  # what the per-source limit counts it under (source_of)
        self.pending = bytearray()  # the first bytes of a query, the rest yet to come
        self.held = b""  # received, not yet answered (after a turn or while blocked) ...
        self.held_pos = 0  # ... from here on
        self.open = False  # counted by the server (admitted, not yet forgotten)
        self.blocked = False  # a response waits for the client to read (pause_writing)
        self.deferred = False  # queries left for the next turn of the loop (TCP_BATCH)
        self.eof = False  # the client half-closed: close once everything is answered
        self.timer: asyncio.TimerHandle | None = None  # the write timeout, until idle again

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.who = peer[0] if peer else ""
        self.source = source_of(self.who)
        transport.set_write_buffer_limits(0)  # pause_writing once anything waits
        self.server._admit(self)

    def data_received(self, data: bytes) -> None:
        if self.blocked or self.deferred:  # not while reading is paused, but in case
            self.held = self.held[self.held_pos:] + bytes(self.pending) + data
            self.held_pos = 0
            self.pending.clear()
            return
        pending = self.pending
        if pending:
            pending += data
            if len(pending) < 2 or len(pending) < 2 + (pending[0] << 8 | pending[1]):
                return  # the rest of the query is yet to come
            data = bytes(pending)
            pending.clear()
        self._answer(data, 0)

    def _answer(self, data: bytes, pos: int) -> None:
        """Answer the complete queries of ``data`` from ``pos`` on, up to
        ``TCP_BATCH`` of them or ``TCP_WRITE_CHUNK`` bytes of answers (then
        the rest is held for the next turn, the other connections' turn
        first), in one write; a query's first bytes wait in ``pending``."""
        transport, handler, who = self.transport, self.server.handler, self.who
        assert transport is not None
        size, answered, written = len(data), 0, 0
        out: list[bytes] = []
        while size - pos >= 2:
            end = pos + 2 + (data[pos] << 8 | data[pos + 1])
            if end > size:
                break
            if answered == TCP_BATCH or written >= TCP_WRITE_CHUNK:
                self.held, self.held_pos = data, pos  # no copy: the next turn goes on from pos
                self.deferred = True
                transport.pause_reading()
                self.server._loop.call_soon(self._continue)
                break
            query = data[pos + 2:end]
            pos = end
            try:
                response = handler(query, who, False)
            except Exception:  # a bug in the handler: skip the query, keep the framing
                log.exception("query from %s over TCP failed", who)
                continue
            if response is None:  # nothing sensible to say: close (RFC 7766 6.2.4)
                transport.write(b"".join(out))
                self.drop()
                return
            out.append(len(response).to_bytes(2, "big"))
            out.append(response)
            written += 2 + len(response)
            answered += 1
        if pos < size and not self.deferred:
            self.pending += data[pos:]  # the start of a query
        if out:
            transport.write(b"".join(out))  # what the kernel cannot take: pause_writing()
        self.server._settle(self, answered)

    def _continue(self) -> None:
        """Answer what is held (after a turn, or once blocked answers were
        sent), then read again."""
        self.deferred = False
        if not self.open or self.blocked:
            return
        data, pos = self.held, self.held_pos
        self.held, self.held_pos = b"", 0
        self._answer(data, pos)
        if self.open and not (self.blocked or self.deferred) and self.transport is not None:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if not self.open:
            return
        assert self.transport is not None
        self.blocked = True
        self.transport.pause_reading()
        self.server._idle.pop(self, None)
        if self.timer is None:  # from the first wait until the connection is idle again
            self.timer = self.server._loop.call_later(self.server.tcp.write_timeout_s,
                                                      self._write_timed_out)

    def resume_writing(self) -> None:
        # the write timeout goes on: a client reading a little now and then (and never
        # letting its answers drain) is reset all the same; _settle stops it once idle
        self.blocked = False
        if not self.deferred:
            self._continue()

    def _write_timed_out(self) -> None:
        self.timer = None
        self.server._note("write_timeouts")
        self.reset()

    def eof_received(self) -> bool:
        self.eof = True
        if not (self.blocked or self.deferred):
            self.drop()
        return True  # keep the transport: answers may still be on their way

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._forget(self)

    def drop(self) -> None:
        """Close the connection (what is written is still sent) and free
        its slot now."""
        self.server._forget(self)
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Reset the connection (RST: what waits in the kernel is thrown
        away too, so a client that never reads learns of it) and free its
        slot now."""
        self.server._forget(self)
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()


class DnsServer:
    """Listens on every ``(address, port)`` of ``listen`` over UDP and TCP.

    Port 0 picks a free port, the same for UDP and TCP; ``addresses`` gives
    the bound ``(address, port)`` pairs after ``start()``. ``tcp``: how TCP
    connections are shared (:class:`TcpLimits`, counted over every listener
    of this server); ``tcp_counters`` counts what they did, by the names
    of ``TCP_COUNTERS`` (in the dict given, so the caller's stats hold
    them; the caller may zero them), ``tcp_connections`` the connections
    open now, ``tcp_blocked`` those waiting for their client to read, ``tcp_queued_bytes()`` what
    this process holds for them.
    ``reuse_port``: bind with ``SO_REUSEPORT``, so several processes share
    the port and the kernel spreads queries over them (``gslb serve
    --workers``). ``cached``: the answer cache the compiled packet path
    answers hits from (:class:`CachedAnswers`; None: every query goes to
    ``handler``). ``packet_path`` says which UDP path the listeners took
    (``"compiled"`` or ``"python"``, :func:`compiled_path`).

    Refused, evicted and reset connections are logged on ``gslb.dns`` at
    most once every ``TCP_LOG_INTERVAL_S`` seconds, one line summing them.
    """

    def __init__(
        self,
        handler: Handler,
        listen: list[tuple[str, int]],
        tcp: TcpLimits | None = None,
        reuse_port: bool = False,
        tcp_counters: dict[str, int] | None = None,
        cached: CachedAnswers | None = None,
    ) -> None:
        self.handler = handler
        self.cached = cached
        self.packet_path = "python"
        self.reuse_port = reuse_port
        self.listen = listen
        self.tcp = tcp if tcp is not None else TcpLimits()
        self.tcp_counters: dict[str, int] = {} if tcp_counters is None else tcp_counters
        for name in TCP_COUNTERS:
            self.tcp_counters.setdefault(name, 0)
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[_Udp] = []
        self._tcp: list[asyncio.Server] = []
        self._connections: set[_TcpConnection] = set()
        self._per_source: dict[str, int] = {}
        #: idle connections, the one idle longest first: since when (loop time, seconds)
        self._idle: OrderedDict[_TcpConnection, float] = OrderedDict()
        self._sweeper: asyncio.TimerHandle | None = None
        self._log_timer: asyncio.TimerHandle | None = None
        self._next_log_at = 0.0
        self._unlogged: dict[str, int] = dict.fromkeys(TCP_COUNTERS, 0)
        self._loop: asyncio.AbstractEventLoop  # from start()
        self._stopped = False

    @property
    def tcp_connections(self) -> int:
        """TCP connections open now (admitted, not yet closed)."""
        return len(self._connections)

    @property
    def tcp_blocked(self) -> int:
        """TCP connections whose answers wait now for their client to read
        them (their write timeout running, their queries not read)."""
        return sum(1 for conn in self._connections if conn.blocked)

    def tcp_queued_bytes(self) -> int:
        """Bytes this process holds for its TCP connections now: responses
        waiting for their client to read, and received queries not yet
        answered (a partial one, or those behind a waiting response).
        Bounded per connection by one turn's answers (under
        ``TCP_WRITE_CHUNK`` plus one answer of up to 65,537 bytes) plus what
        one read of the socket brings (asyncio reads up to 256 KiB)."""
        total = 0
        for conn in self._connections:
            total += len(conn.pending) + len(conn.held) - conn.held_pos
            if conn.transport is not None:
                total += conn.transport.get_write_buffer_size()
        return total

    async def start(self) -> None:
        """Bind every listener (first raising the open-files limit to fit
        ``tcp.clients``: :func:`raise_open_files`). Raises ``OSError`` when an
        address cannot be bound (in use, not local)."""
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        raise_open_files(self.tcp.clients + SPARE_FILES)
        try:
            for host, port in self.listen:
                await self._bind(host, port)
        except BaseException:
            await self.stop()
            raise

    async def _bind(self, host: str, port: int) -> None:
        udp_sock, tcp_sock = bind_udp_tcp(host, port, reuse_port=self.reuse_port,
                                          receive_buffer=UDP_RCVBUF)
        try:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):  # inherited by connections
                tcp_sock.setsockopt(socket.SOL_SOCKET, option, TCP_SOCKET_BUFFER)
            tcp_server = await self._loop.create_server(
                lambda: _TcpConnection(self), sock=tcp_sock, backlog=TCP_BACKLOG)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        bound = udp_sock.getsockname()[1]
        granted = udp_sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        packets = compiled_path()
        self.packet_path = "python" if packets is None else "compiled"
        self._udp.append(_Udp(udp_sock, self.handler, self.cached, packets))
        self._tcp.append(tcp_server)
        self.addresses.append((host, bound))
        log.info("listening on %s port %d (UDP and TCP)", host, bound)
        if granted < UDP_RCVBUF:
            log.info("UDP receive buffer %d bytes (asked for %d): raise "
                     "net.core.rmem_max to absorb bigger bursts", granted, UDP_RCVBUF)

    # -- TCP connections: admission, idleness, eviction ------------------------------

    def _admit(self, conn: _TcpConnection) -> None:
        """Count a new connection in, or close it: its address at its limit,
        or the listener full with no idle connection to close instead."""
        transport, who, limits = conn.transport, conn.source, self.tcp
        assert transport is not None
        if self._stopped:  # accepted as stop() closed the listeners
            transport.abort()
            return
        count = self._per_source.get(who, 0)
        if count >= limits.per_source:
            self._note("refused_per_source")
            transport.close()
            return
        if len(self._connections) >= limits.clients:
            if not self._idle:
                self._note("refused_full")
                transport.close()
                return
            oldest, _since = self._idle.popitem(last=False)
            self._note("evicted")
            oldest.drop()
        conn.open = True
        self._connections.add(conn)
        self._per_source[who] = count + 1
        self._make_idle(conn)  # waiting for its first query

    def _settle(self, conn: _TcpConnection, answered: int) -> None:
        """After ``conn`` answered ``answered`` queries: busy (a response
        waits, or queries wait for the next turn) or idle again, since now
        when it answered something."""
        if not conn.open:
            return
        if conn.blocked or conn.deferred:
            self._idle.pop(conn, None)
        elif conn.eof:
            conn.drop()
        elif answered or conn not in self._idle:
            if conn.timer is not None:  # everything sent: the write timeout is over
                conn.timer.cancel()
                conn.timer = None
            self._make_idle(conn)

    def _make_idle(self, conn: _TcpConnection) -> None:
        idle = self._idle
        idle[conn] = self._loop.time()
        idle.move_to_end(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self.tcp.idle_s, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for ``idle_s`` seconds (the oldest
        are first), then wait for the next one's turn."""
        self._sweeper = None
        idle, idle_s = self._idle, self.tcp.idle_s
        deadline = self._loop.time() - idle_s
        while idle:
            conn = next(iter(idle))
            since = idle[conn]
            if since > deadline:
                self._sweeper = self._loop.call_at(since + idle_s, self._sweep)
                return
            counters = self.tcp_counters
            counters["idle_timeouts"] = counters.get("idle_timeouts", 0) + 1
            conn.drop()

    def _forget(self, conn: _TcpConnection) -> None:
        """Free ``conn``'s slot (once; closing it is the caller's)."""
        if not conn.open:
            return
        conn.open = False
        self._connections.discard(conn)
        self._idle.pop(conn, None)
        left = self._per_source[conn.source] - 1
        if left:
            self._per_source[conn.source] = left
        else:
            del self._per_source[conn.source]
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def _note(self, counter: str) -> None:
        """Count a refused, evicted or reset connection; log the sum of
        them within ``TCP_LOG_INTERVAL_S`` (at once after a quiet period)."""
        counters = self.tcp_counters
        counters[counter] = counters.get(counter, 0) + 1
        self._unlogged[counter] += 1
        if self._log_timer is None:
            self._log_timer = self._loop.call_at(max(self._loop.time(), self._next_log_at),
                                                 self._log_tcp)

    def _log_tcp(self) -> None:
        self._log_timer = None
        self._next_log_at = self._loop.time() + TCP_LOG_INTERVAL_S
        new, self._unlogged = self._unlogged, dict.fromkeys(TCP_COUNTERS, 0)
        limits = self.tcp
        parts = [text for count, text in (
            (new["refused_per_source"],
             f"refused from addresses at their limit of {limits.per_source}"),
            (new["refused_full"], f"refused with all {limits.clients} busy"),
            (new["evicted"], "idle ones closed to admit new ones"),
            (new["write_timeouts"],
             f"reset for not reading their answers within {limits.write_timeout_s:g} s"),
        ) if count for text in [f"{count} {text}"]]
        if parts:
            log.warning("TCP connections since the last report: %s (%d open)",
                        ", ".join(parts), len(self._connections))

    async def stop(self) -> None:
        """Close every listener and TCP connection."""
        for udp in self._udp:
            udp.close()
        for server in self._tcp:
            server.close()
        for timer in (self._sweeper, self._log_timer):
            if timer is not None:
                timer.cancel()
        self._sweeper = self._log_timer = None
        self._stopped = True
        for conn in list(self._connections):
            self._forget(conn)
            if conn.transport is not None:
                conn.transport.abort()
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        await asyncio.sleep(0)  # let the transports' connection_lost run
        self._udp.clear()
        self._tcp.clear()
