"""Redis URL parsing (``gslb.health.redis.client.parse_url``): every form, password
masking, the environment password, and clear errors for bad URLs."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

from gslb.health.redis.client import RedisConfigError, make_client, mask_url, parse_url
from gslb.health.redis.sink import RedisSink
from gslb.health.redis.watcher import RedisWatcher
from gslb.health.view import QuorumView


@pytest.mark.parametrize(("url", "expect"), [
    ("redis://localhost", dict(kind="tcp", tls=False, hosts=(("localhost", 6379),), db=0)),
    ("redis://10.0.0.5:6380/2", dict(hosts=(("10.0.0.5", 6380),), db=2)),
    ("redis://:s3cret@h/1", dict(password="s3cret", username=None, db=1)),
    ("redis://gslb:p%40ss@h:7000", dict(username="gslb", password="p@ss")),
    ("redis://[::1]:6390", dict(hosts=(("::1", 6390),))),
    ("redis://h?db=3&socket_timeout=0.5", dict(db=3, options={"socket_timeout": 0.5})),
    ("rediss://h:6380?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required",
     dict(tls=True, options={"ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": "required"})),
    ("unix:///run/redis/redis.sock", dict(kind="unix", path="/run/redis/redis.sock", db=0)),
    ("unix:///run/r.sock?db=4&password=pw", dict(kind="unix", db=4, password="pw")),
    ("redis+sentinel://s1,s2:26380/mymaster",
     dict(kind="sentinel", hosts=(("s1", 26379), ("s2", 26380)), service="mymaster", db=0)),
    ("redis+sentinel://:pw@s1:26379/mymaster/5?sentinel_password=spw",
     dict(password="pw", sentinel_password="spw", service="mymaster", db=5)),
    ("rediss+sentinel://s1/m", dict(kind="sentinel", tls=True, service="m")),
])
def test_forms(url, expect):
    target = parse_url(url, env={})
    for key, value in expect.items():
        got = getattr(target, key)
        assert (dict(got) if key == "options" else got) == value, key


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:s3:cret@h", "redis://user:***@h"),
    ("redis://user@h", "redis://user@h"),
    ("unix:///r.sock?db=1&password=s3cret", "unix:///r.sock?db=1&password=***"),
    ("redis+sentinel://:a@s1,s2/m?sentinel_password=b", "redis+sentinel://:***@s1,s2/m"
                                                         "?sentinel_password=***"),
])
def test_masking(url, masked):
    assert mask_url(url) == masked
    target = parse_url(url, env={})
    assert str(target) == masked
    assert "s3cret" not in repr(target)


def test_env_password_applies_only_when_the_url_has_none():
    env = {"GSLB_REDIS_PASSWORD": "fromenv", "GSLB_REDIS_SENTINEL_PASSWORD": "sfromenv"}
    assert parse_url("redis://h", env=env).password == "fromenv"
    assert parse_url("redis://:inurl@h", env=env).password == "inurl"
    target = parse_url("redis+sentinel://h/m", env=env)
    assert (target.password, target.sentinel_password) == ("fromenv", "sfromenv")
    assert "fromenv" not in repr(target)


@pytest.mark.parametrize(("url", "error"), [
    ("", "scheme must be one of"),
    ("localhost:6379", "scheme must be one of"),
    ("http://h", "scheme must be one of"),
    ("redis://h:port", "bad port 'port'"),
    ("redis://h:70000", "bad port '70000'"),
    ("redis://h:0", "bad port '0'"),
    ("redis://h/x", "database must be a number"),
    ("redis://h/-1", "database must be a number"),
    ("redis://h/0/1", "unexpected path"),
    ("redis://a,b", "exactly one host"),
    ("redis://h?ssl_ca_certs=/x", "TLS options need rediss://"),
    ("redis://h?sockettimeout=1", "unknown option 'sockettimeout'"),
    ("redis://h?socket_timeout=soon", "bad value 'soon' for option 'socket_timeout'"),
    ("unix://", "socket path is missing"),
    ("unix://host/r.sock", "three slashes"),
    ("redis+sentinel://s1:26379", "service (master) name is missing"),
    ("redis+sentinel:///m", "no sentinel host"),
    ("redis+sentinel://s1:x/m", "bad port 'x'"),
    ("redis://:s3cret@h:99999", "bad port"),
])
def test_errors(url, error):
    with pytest.raises(RedisConfigError) as info:
        parse_url(url, env={})
    text = str(info.value)
    assert error in text
    assert text.startswith(f"bad Redis URL {mask_url(url)!r}: ")
    assert "s3cret" not in text


def test_bad_url_fails_at_construction_not_later():
    with pytest.raises(RedisConfigError, match="bad port"):
        RedisWatcher("redis://:pw@h:99999", QuorumView(), resync_interval_s=30)
    with pytest.raises(RedisConfigError, match="service"):
        RedisSink("redis+sentinel://h", key_ttl_s=60)


async def test_make_client_builds_the_right_connection_without_connecting():
    tls = make_client(parse_url("rediss://h:6380/1?ssl_cert_reqs=none", env={}))
    unix = make_client(parse_url("unix:///tmp/none.sock?db=2", env={}))
    sentinel = make_client(parse_url("redis+sentinel://:pw@s1,s2/m/3", env={}))
    try:
        kw = tls.connection_pool.connection_kwargs
        assert tls.connection_pool.connection_class is SSLConnection
        assert (kw["host"], kw["port"], kw["db"], kw["ssl_cert_reqs"]) == ("h", 6380, 1, "none")
        assert unix.connection_pool.connection_class is UnixDomainSocketConnection
        assert unix.connection_pool.connection_kwargs["path"] == "/tmp/none.sock"
        kw = sentinel.connection_pool.connection_kwargs
        assert (kw["db"], kw["password"]) == (3, "pw")
        assert sentinel.connection_pool.service_name == "m"
    finally:
        for client in (tls, unix, sentinel):
            await client.aclose()
