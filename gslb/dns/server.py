"""UDP and TCP listeners: bytes in, bytes out, no DNS logic.

A ``Handler`` takes the query bytes, the client's address (text) and whether
the query came over UDP, and returns the response bytes or None (no answer).
TCP uses the 2-octet length framing of RFC 1035 section 4.2.2, accepts
several queries per connection and closes idle connections (RFC 7766
sections 6.2.1 and 6.2.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger("gslb.dns")

Handler = Callable[[bytes, str, bool], bytes | None]

#: Seconds a TCP connection may stay idle between queries (RFC 7766 6.2.3).
TCP_IDLE_TIMEOUT_S = 10.0
#: Concurrent TCP connections per listener; further ones are closed at once.
MAX_TCP_CLIENTS = 512


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


class _Udp:
    """A UDP listener read with ``loop.add_reader``, draining up to
    ``UDP_BATCH`` datagrams per wake-up, where asyncio's ``DatagramProtocol``
    path reads one datagram per selector round (the measured difference:
    docs/performance.md). Responses are sent with a non-blocking ``sendto``;
    when the socket buffer is full the response is dropped, as UDP may."""

    def __init__(self, sock: socket.socket, handler: Handler) -> None:
        self.sock = sock
        self.handler = handler
        sock.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)

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


class DnsServer:
    """Listens on every ``(address, port)`` of ``listen`` over UDP and TCP.

    Port 0 picks a free port, the same for UDP and TCP; ``addresses`` gives
    the bound ``(address, port)`` pairs after ``start()``. ``tcp_idle_s`` is
    the TCP idle timeout in seconds (default ``TCP_IDLE_TIMEOUT_S``).
    ``reuse_port``: bind with ``SO_REUSEPORT``, so several processes share
    the port and the kernel spreads queries over them (``gslb serve
    --workers``).
    """

    def __init__(
        self,
        handler: Handler,
        listen: list[tuple[str, int]],
        tcp_idle_s: float | None = None,
        max_tcp_clients: int = MAX_TCP_CLIENTS,
        reuse_port: bool = False,
    ) -> None:
        self.handler = handler
        self.reuse_port = reuse_port
        self.listen = listen
        self.tcp_idle_s = TCP_IDLE_TIMEOUT_S if tcp_idle_s is None else tcp_idle_s
        self.max_tcp_clients = max_tcp_clients
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[_Udp] = []
        self._tcp: list[asyncio.Server] = []
        self._tcp_tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        """Bind every listener. Raises ``OSError`` when an address cannot be
        bound (in use, not local)."""
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
            tcp_server = await asyncio.start_server(self._tcp_client, sock=tcp_sock, backlog=128)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        bound = udp_sock.getsockname()[1]
        granted = udp_sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self._udp.append(_Udp(udp_sock, self.handler))
        self._tcp.append(tcp_server)
        self.addresses.append((host, bound))
        log.info("listening on %s port %d (UDP and TCP)", host, bound)
        if granted < UDP_RCVBUF:
            log.info("UDP receive buffer %d bytes (asked for %d): raise "
                     "net.core.rmem_max to absorb bigger bursts", granted, UDP_RCVBUF)

    def _tcp_client(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        # A plain function, so the connection is counted and its writer
        # registered before the loop runs anything else: asyncio's stream
        # server does not close the transport of a handler task cancelled
        # before its first step (stop() can do that), so stop() closes any
        # writer its task left open.
        if len(self._tcp_tasks) >= self.max_tcp_clients:
            writer.close()
            return
        task = asyncio.get_running_loop().create_task(self._tcp_serve(reader, writer))
        self._tcp_tasks[task] = writer
        task.add_done_callback(self._tcp_tasks.pop)

    async def _tcp_serve(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """Answer one TCP connection's queries (RFC 7766 framing) until the
        client closes it, it idles past ``tcp_idle_s`` seconds, or stop()."""
        peer = writer.get_extra_info("peername")
        who = peer[0] if peer else ""
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle_s)
                    (length,) = struct.unpack("!H", head)
                    data = await asyncio.wait_for(reader.readexactly(length), self.tcp_idle_s)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    response = self.handler(data, who, False)
                except Exception:
                    log.exception("query from %s over TCP failed", who)
                    return
                if response is None:
                    return  # nothing sensible to say: close (RFC 7766 6.2.4)
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return  # stop() cancels open connections: end quietly
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        """Close every listener and TCP connection."""
        for udp in self._udp:
            udp.close()
        for server in self._tcp:
            server.close()
        connections = dict(self._tcp_tasks)
        for task in connections:
            task.cancel()
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        await asyncio.gather(*connections, return_exceptions=True)
        for writer in connections.values():  # a task cancelled before it ran
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in connections.values()),
                             return_exceptions=True)
        self._udp.clear()
        self._tcp.clear()
