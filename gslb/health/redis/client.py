"""Where Redis is and how to reach it: URLs (``parse_url``, forms in
docs/redis.md, passwords masked by ``mask_url``) and clients
(``make_client``: TCP, TLS, Unix socket or Sentinel)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import (
    URL_QUERY_ARGUMENT_PARSERS,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from gslb.errors import GslbError

PASSWORD_ENV = "GSLB_REDIS_PASSWORD"
"""Environment variable giving the Redis password when the URL has none."""
SENTINEL_PASSWORD_ENV = "GSLB_REDIS_SENTINEL_PASSWORD"
"""Environment variable giving the Sentinel password when the URL has none."""
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
CONNECT_TIMEOUT_S = 2.0
"""Default socket connect timeout, seconds (``?socket_connect_timeout=``)."""
SOCKET_TIMEOUT_S = 5.0
"""Default command timeout, seconds (``?socket_timeout=``)."""

_SCHEMES: dict[str, tuple[Literal["tcp", "unix", "sentinel"], bool]] = {
    "redis": ("tcp", False), "rediss": ("tcp", True), "unix": ("unix", False),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
}
_OPTIONS = frozenset({
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_read_size",
    "health_check_interval", "client_name", "max_connections", "protocol"})
_TLS_OPTIONS = frozenset({
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
    "ssl_ca_path", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers", "ssl_password",
    "ssl_include_verify_flags", "ssl_exclude_verify_flags"})
_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:sentinel_)?password=)[^&;#]*")


class RedisConfigError(GslbError):
    """A Redis URL that cannot be used; the message quotes the URL with every
    password masked."""


def mask_url(url: str) -> str:
    """``url`` with the password of its user info and any ``password=`` /
    ``sentinel_password=`` query value replaced by ``***`` (safe to log)."""
    scheme, sep, rest = url.partition("://")
    if sep:
        at = rest.rfind("@")
        colon = rest.find(":", 0, at)
        if at >= 0 and colon >= 0:
            rest = f"{rest[:colon]}:***{rest[at:]}"
    return _SECRET_QUERY.sub(r"\1***", f"{scheme}{sep}{rest}")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is, as parsed from a URL by ``parse_url``.

    * ``kind``: ``"tcp"`` (``hosts`` holds the one server), ``"unix"``
      (``path``) or ``"sentinel"`` (``hosts`` holds the sentinels,
      ``service`` the monitored master's name).
    * ``tls``: connect with TLS (``rediss://``, ``rediss+sentinel://``; to
      the sentinels too).
    * ``db``: the database number; ``username``/``password``: the master's
      ACL user and password (from the URL, else ``GSLB_REDIS_PASSWORD``);
      ``sentinel_username``/``sentinel_password``: for the sentinels.
    * ``options``: further connection keywords from the query string,
      converted as redis-py does (``socket_timeout``, ``ssl_ca_certs``...).
    * ``masked``: the URL with passwords masked; also ``str(target)``.
    """

    kind: Literal["tcp", "unix", "sentinel"]
    tls: bool
    masked: str
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __str__(self) -> str:
        return self.masked


def parse_url(url: str, env: Mapping[str, str] | None = None) -> RedisTarget:
    """Parse a Redis URL (forms in docs/redis.md):

    * ``redis://[[user]:password@]host[:port][/db][?option=value...]``
    * ``rediss://...`` (TLS; ``?ssl_ca_certs=/path&ssl_cert_reqs=required``...)
    * ``unix:///path/to.sock[?db=N&password=...]``
    * ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/SERVICE[/db]``
      (``rediss+sentinel://`` for TLS; sentinel port 26379 by default;
      ``?sentinel_password=`` / ``?sentinel_username=`` for the sentinels).

    ``env`` (default ``os.environ``) supplies ``GSLB_REDIS_PASSWORD`` and
    ``GSLB_REDIS_SENTINEL_PASSWORD`` when the URL has no such password.
    Raises ``RedisConfigError`` (URL masked in the message) for an unknown
    scheme, a bad host, port, database or option, or a missing service name
    or socket path.
    """
    env = os.environ if env is None else env
    masked = mask_url(url)

    def fail(why: str) -> RedisConfigError:
        return RedisConfigError(f"bad Redis URL {masked!r}: {why}")

    kind, tls, parts = _split(url, fail)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    username, password, sentinel_username, sentinel_password = _credentials(userinfo, query)
    db_text = query.pop("db", None)
    path = unquote(parts.path)
    hosts: tuple[tuple[str, int], ...] = ()
    service = unix_path = None
    if kind == "unix":
        unix_path = _unix_path(hostlist, path, fail)
    else:
        hosts = _hosts(kind, hostlist, fail)
        service, path_db = _service_and_db(kind, path, fail)
        if db_text is None:
            db_text = path_db
    return RedisTarget(
        kind=kind, tls=tls, masked=masked, hosts=hosts, path=unix_path, service=service,
        db=_database(db_text, fail), username=username,
        password=password or env.get(PASSWORD_ENV) or None,
        sentinel_username=sentinel_username,
        sentinel_password=sentinel_password or env.get(SENTINEL_PASSWORD_ENV) or None,
        options=MappingProxyType(_options(query, tls, fail)))


_Fail = Callable[[str], RedisConfigError]
"""Makes the error of a bad URL from why it is bad (the URL masked)."""


def _split(url: str, fail: _Fail) -> tuple[Literal["tcp", "unix", "sentinel"], bool, SplitResult]:
    """The kind and TLS flag of ``url``'s scheme, and the rest split."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise fail(f"the scheme must be one of {', '.join(s + '://' for s in _SCHEMES)}")
    kind, tls = _SCHEMES[scheme.lower()]
    try:
        parts = urlsplit(f"x://{rest}")
    except ValueError as exc:
        raise fail(str(exc)) from None
    if parts.fragment:
        raise fail("a URL fragment ('#...') is not allowed")
    return kind, tls, parts


def _credentials(userinfo: str,
                 query: dict[str, str]) -> tuple[str | None, str | None, str | None, str | None]:
    """``(username, password, sentinel_username, sentinel_password)``: the
    user info wins over the query; each is taken out of ``query``; empty is
    None."""
    user, _, pw = userinfo.partition(":")
    query_user, query_pw = query.pop("username", None), query.pop("password", None)
    return (unquote(user) or query_user or None, unquote(pw) or query_pw or None,
            query.pop("sentinel_username", None) or None,
            query.pop("sentinel_password", None) or None)


def _unix_path(hostlist: str, path: str, fail: _Fail) -> str:
    if hostlist:
        raise fail("write unix:///path/to.sock (three slashes: no host)")
    if not path or path == "/":
        raise fail("the socket path is missing")
    return path


def _hosts(kind: str, hostlist: str, fail: _Fail) -> tuple[tuple[str, int], ...]:
    """The one server (``tcp``) or the sentinels, default ports filled in."""
    default = DEFAULT_SENTINEL_PORT if kind == "sentinel" else DEFAULT_PORT
    items = hostlist.split(",") if hostlist else ([] if kind == "sentinel" else [""])
    hosts = tuple(_host_port(item, default, fail) for item in items)
    if kind == "tcp" and len(hosts) != 1:
        raise fail("exactly one host is allowed (a Sentinel URL lists several)")
    if not hosts:
        raise fail("no sentinel host is given")
    return hosts


def _service_and_db(kind: str, path: str, fail: _Fail) -> tuple[str | None, str | None]:
    """From the path: the Sentinel service (None for ``tcp``) and the
    database text (None when the path gives none)."""
    segments = [s for s in path.split("/") if s]
    service = None
    if kind == "sentinel":
        if not segments:
            raise fail("the Sentinel service (master) name is missing: "
                       "redis+sentinel://host:26379/SERVICE[/db]")
        service = segments.pop(0)
    if len(segments) > 1:
        raise fail(f"unexpected path {path!r}")
    return service, segments[0] if segments else None


def _database(db_text: str | None, fail: _Fail) -> int:
    try:
        db = int(db_text) if db_text is not None else 0
        if db < 0:
            raise ValueError
    except ValueError:
        raise fail(f"the database must be a number from 0, not {db_text!r}") from None
    return db


def _options(query: Mapping[str, str], tls: bool, fail: _Fail) -> dict[str, Any]:
    """The rest of the query as connection keywords, converted as redis-py
    does; an unknown option (or a TLS one without TLS) fails."""
    allowed = _OPTIONS | (_TLS_OPTIONS if tls else frozenset())
    options: dict[str, Any] = {}
    for key, value in query.items():
        if key not in allowed:
            hint = " (TLS options need rediss://)" if key in _TLS_OPTIONS else ""
            raise fail(f"unknown option {key!r}{hint}; known: {', '.join(sorted(allowed))}")
        parser = URL_QUERY_ARGUMENT_PARSERS.get(key)
        try:
            options[key] = parser(value) if parser else value
        except (TypeError, ValueError):
            raise fail(f"bad value {value!r} for option {key!r}") from None
    return options


def _host_port(text: str, default: int, fail: _Fail) -> tuple[str, int]:
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise fail(f"bad host {text!r}")
        port_text = after[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    host = unquote(host) or "localhost"
    if any(c in host for c in " /?#@[]"):
        raise fail(f"bad host {host!r}")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise fail(f"bad port {port_text!r} (1 to 65535)")
    return host, int(port_text)


class _SentinelMaster(Redis):
    """The master client of a Sentinel URL; closing it closes the sentinel
    connections of ``sentinels`` too. (Not named ``sentinel``: that is the
    client's SENTINEL command.)"""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            for client in self.sentinels.sentinels:
                await client.aclose()


def make_client(target: RedisTarget) -> Redis:
    """A ``redis.asyncio.Redis`` client for ``target`` (connects lazily, on
    the first command). Responses are decoded to ``str``. Timeouts default to
    ``CONNECT_TIMEOUT_S``/``SOCKET_TIMEOUT_S`` seconds; a failed command is
    retried once at once (a pooled connection may be stale), then raises:
    the callers here own the backoff. Close it with ``await client.aclose()``.
    """
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 1), **target.options,
        "db": target.db, "username": target.username, "password": target.password,
        "decode_responses": True,
    }
    if target.kind == "sentinel":
        sentinel_kwargs = {k: v for k, v in kwargs.items()
                           if k.startswith(("socket_", "ssl_")) or k == "retry"}
        sentinel_kwargs.update(username=target.sentinel_username,
                               password=target.sentinel_password, ssl=target.tls,
                               decode_responses=True)
        # redis-py's Sentinel.__init__ has no annotations
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts), sentinel_kwargs=sentinel_kwargs)
        assert target.service is not None
        client = sentinel.master_for(target.service, redis_class=_SentinelMaster,
                                     ssl=target.tls, **kwargs)
        assert isinstance(client, _SentinelMaster)  # master_for returns an instance of it
        client.sentinels = sentinel
        return client
    if target.kind == "unix":
        kwargs.update(connection_class=UnixDomainSocketConnection, path=target.path)
        kwargs.pop("socket_keepalive", None)  # TCP only
    else:
        host, port = target.hosts[0]
        kwargs.update(connection_class=SSLConnection if target.tls else Connection,
                      host=host, port=port)
    return Redis.from_pool(ConnectionPool(**kwargs))
