"""``gslb.dns.server.bind_udp_tcp``: one port for UDP and TCP, the socket
options, port 0 retried, nothing left open on failure; ``DnsServer``
binding through it; the TCP limits' bounds and the open-files limit."""

from __future__ import annotations

import asyncio
import errno
import re
import resource
import socket
from typing import ClassVar

import pytest

from gslb.dns import server as srv
from gslb.dns.server import (
    BIND_ATTEMPTS,
    TCP_SOCKET_BUFFER,
    UDP_RCVBUF,
    DnsServer,
    TcpLimits,
    bind_udp_tcp,
    raise_open_files,
    source_of,
)


def _opt(sock: socket.socket, level: int, name: int) -> int:
    return sock.getsockopt(level, name)


def test_port_0_gives_one_free_port_to_both_bound_and_not_listening() -> None:
    udp, tcp = bind_udp_tcp("127.0.0.1", 0)
    try:
        assert udp.type == socket.SOCK_DGRAM and tcp.type == socket.SOCK_STREAM
        port = udp.getsockname()[1]
        assert port and tcp.getsockname() == ("127.0.0.1", port)
        assert not _opt(tcp, socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert _opt(tcp, socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert not _opt(udp, socket.SOL_SOCKET, socket.SO_REUSEPORT)
        assert not _opt(tcp, socket.SOL_SOCKET, socket.SO_REUSEPORT)
        assert udp.getblocking() and tcp.getblocking()
    finally:
        udp.close()
        tcp.close()


def test_ipv6_is_v6only_and_reuse_port_lets_a_second_pair_share_the_port() -> None:
    try:
        udp, tcp = bind_udp_tcp("::1", 0, reuse_port=True)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        for sock in (udp, tcp):
            assert _opt(sock, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            assert _opt(sock, socket.SOL_SOCKET, socket.SO_REUSEPORT)
        port = udp.getsockname()[1]
        udp2, tcp2 = bind_udp_tcp("::1", port, reuse_port=True)
        assert udp2.getsockname()[1] == tcp2.getsockname()[1] == port
        udp2.close()
        tcp2.close()
    finally:
        udp.close()
        tcp.close()


def test_receive_buffer_is_asked_for_only_when_given() -> None:
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    default = _opt(plain, socket.SOL_SOCKET, socket.SO_RCVBUF)
    plain.close()
    udp, tcp = bind_udp_tcp("127.0.0.1", 0)
    assert _opt(udp, socket.SOL_SOCKET, socket.SO_RCVBUF) == default
    udp.close()
    tcp.close()
    if default >= UDP_RCVBUF:
        pytest.skip("the default receive buffer is already as large as asked for")
    udp, tcp = bind_udp_tcp("127.0.0.1", 0, receive_buffer=UDP_RCVBUF)
    assert _opt(udp, socket.SOL_SOCKET, socket.SO_RCVBUF) > default
    udp.close()
    tcp.close()


def test_a_fixed_port_taken_for_tcp_raises_naming_the_address_and_leaves_nothing_open() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(OSError) as err:
            bind_udp_tcp("127.0.0.1", port)
        assert err.value.errno == errno.EADDRINUSE
        assert str(err.value) == (f"[Errno {errno.EADDRINUSE}] error while attempting to bind "
                                  f"on address ('127.0.0.1', {port}): address already in use")
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", port))  # the UDP socket was closed
        probe.close()
    finally:
        taken.close()


def test_a_udp_port_in_use_raises_at_once() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(OSError) as err:
            bind_udp_tcp("127.0.0.1", taken.getsockname()[1])
        assert err.value.errno == errno.EADDRINUSE
    finally:
        taken.close()


class _TcpRefused(socket.socket):
    """A socket whose TCP binds fail while ``refuse`` says so; every one
    made is kept in ``made``."""

    made: ClassVar[list[socket.socket]] = []
    refuse: ClassVar[int] = 0

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        _TcpRefused.made.append(self)

    def bind(self, address: object) -> None:
        if self.type == socket.SOCK_STREAM and _TcpRefused.refuse:
            _TcpRefused.refuse -= 1
            raise OSError(errno.EADDRINUSE, "Address already in use")
        super().bind(address)  # type: ignore[arg-type]


@pytest.fixture
def tcp_refused(monkeypatch: pytest.MonkeyPatch) -> type[_TcpRefused]:
    _TcpRefused.made, _TcpRefused.refuse = [], 0
    monkeypatch.setattr(srv.socket, "socket", _TcpRefused)
    return _TcpRefused


def test_port_0_tries_another_port_when_tcp_cannot_have_udps(
        tcp_refused: type[_TcpRefused]) -> None:
    tcp_refused.refuse = 3
    udp, tcp = bind_udp_tcp("127.0.0.1", 0)
    try:
        assert udp.getsockname()[1] == tcp.getsockname()[1]
        assert len(tcp_refused.made) == 2 * 4
        assert all(s.fileno() == -1 for s in tcp_refused.made[:-2])
    finally:
        udp.close()
        tcp.close()


def test_port_0_gives_up_after_the_attempts_with_nothing_open(
        tcp_refused: type[_TcpRefused]) -> None:
    tcp_refused.refuse = BIND_ATTEMPTS
    with pytest.raises(OSError, match=re.escape("no port free for both UDP and TCP on 127.0.0.1")):
        bind_udp_tcp("127.0.0.1", 0)
    assert len(tcp_refused.made) == 2 * BIND_ATTEMPTS
    assert all(s.fileno() == -1 for s in tcp_refused.made)


async def test_dns_server_listens_on_the_pair_and_a_port_in_use_fails_cleanly() -> None:
    server = DnsServer(lambda data, who, udp: None, [("127.0.0.1", 0)])
    await server.start()
    try:
        ((host, port),) = server.addresses
        assert host == "127.0.0.1" and port
        other = DnsServer(lambda data, who, udp: None, [("127.0.0.1", port)])
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await other.start()
        assert other.addresses == []
    finally:
        await server.stop()


@pytest.mark.parametrize(("limits", "message"), [
    ({"clients": 0}, "TCP connections: must be at least 1, not 0"),
    ({"per_source": -1}, "TCP connections per client address: must be at least 1, not -1"),
    ({"idle_s": 0.0}, "TCP idle timeout: must be above 0 seconds, not 0.0"),
    ({"write_timeout_s": float("nan")}, "TCP write timeout: must be above 0 seconds, not nan"),
])
def test_tcp_limits_reject_counts_below_1_and_times_not_above_0(
        limits: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TcpLimits(**limits)  # type: ignore[arg-type]


async def test_tcp_connections_get_the_small_socket_buffers_and_the_open_files_limit_fits(
        ) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = DnsServer(lambda data, who, udp: data, [("127.0.0.1", 0)], TcpLimits(clients=600))
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 512), hard))
    try:
        await server.start()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(hard, 600 + srv.SPARE_FILES)
        reader, writer = await asyncio.open_connection(*server.addresses[0])
        try:
            writer.write(b"\x00\x01x")
            assert await asyncio.wait_for(reader.readexactly(3), 2) == b"\x00\x01x"
            (conn,) = server._connections
            assert conn.transport is not None
            sock = conn.transport.get_extra_info("socket")
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):  # Linux doubles the figure
                assert sock.getsockopt(socket.SOL_SOCKET, option) == 2 * TCP_SOCKET_BUFFER
        finally:
            writer.close()
    finally:
        await server.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_raise_open_files_never_lowers_the_limit() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_files(16) == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


def test_the_per_source_limit_counts_an_ipv6_client_by_its_slash_64() -> None:
    """One host commonly has a whole /64 (RFC 7421): the per-source limit
    counts IPv6 clients by it, IPv4 clients by their address."""
    assert source_of("192.0.2.1") == "192.0.2.1" != source_of("192.0.2.2")
    assert source_of("2001:db8:1:2::1") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::1") == "::/64"
