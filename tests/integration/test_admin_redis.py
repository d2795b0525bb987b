"""Drains shared through a real Redis: drained on one nameserver, out of the
answers of every nameserver within milliseconds, persisted for one started
later, lifted everywhere, expiring everywhere."""

from __future__ import annotations

import time

from gslb.serve.service import Service
from tests.integration.adminutil import TOKEN, ask, call, config_text, start_service


async def test_a_drain_is_shared_by_two_servers_through_redis(tmp_path, redis_server,
                                                              refused_port):
    text = config_text(refused_port, refused_port)  # no probe worker: every origin is up
    servers: list[Service] = []
    try:
        for i in range(2):
            servers.append(await start_service(tmp_path, text, redis_url=redis_server.url,
                                               name=f"zone{i}.yaml"))
        one, two = servers
        for service in servers:
            assert await ask(service) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            assert (await call(service, "GET", "/readyz"))[0] == 200

        start = time.monotonic()
        status, _ = await call(one, "POST", "/api/v1/origins/a/drain", token=TOKEN,
                               json={"reason": "disk full", "who": "carol"})
        assert status == 200
        await two.overrides.wait_for(lambda: two.overrides.is_drained("a"), 2)
        assert time.monotonic() - start < 0.5
        for service in servers:
            assert await ask(service) == ["192.0.2.2", "192.0.2.3"]
        drain = two.overrides.get("a")
        assert drain is not None and (drain.who, drain.reason) == ("carol", "disk full")

        # persisted in Redis: a nameserver started now loads it
        three = await start_service(tmp_path, text, redis_url=redis_server.url,
                                    name="zone2.yaml")
        servers.append(three)
        assert three.overrides.is_drained("a")
        assert await ask(three) == ["192.0.2.2", "192.0.2.3"]

        status, body = await call(two, "POST", "/api/v1/origins/a/undrain", token=TOKEN)
        assert (status, body) == (200, {"undrained": True})
        for service in servers:
            await service.overrides.wait_for(lambda s=service: not s.overrides.is_drained("a"),
                                             2)
            assert await ask(service) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]

        # an expiring drain lifts itself on every server (and leaves Redis)
        status, _ = await call(three, "POST", "/api/v1/origins/c/drain", token=TOKEN,
                               json={"reason": "brief", "expires_in": 0.4})
        assert status == 200
        await one.overrides.wait_for(lambda: one.overrides.is_drained("c"), 2)
        for service in servers:
            await service.overrides.wait_for(lambda s=service: not s.overrides.is_drained("c"),
                                             3)
        assert await ask(one) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        assert three.redis is not None
        assert await three.redis.overrides._client.exists(
            three.redis.overrides.key("c")) == 0
    finally:
        for service in servers:
            await service.stop()
