"""A layer's description names where it is (host, port, db, socket path, prefix), never who
may log in: ``ws.layer_desc`` is written on every publish and group join."""

from __future__ import annotations

import asyncio

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from wstrace import conventions as c
from wstrace.channels.layer_identity import identity, parse_host

SECRET = "s3cret-Pw"


@pytest.mark.parametrize(
    ("host", "where"),
    [
        (f"redis://:{SECRET}@cache:6380/3", "cache:6380/3"),
        (f"rediss://user:{SECRET}@cache/1", "cache:6379/1"),
        (f"unix://:{SECRET}@/run/redis.sock?db=2", "unix:/run/redis.sock/2"),
        (f"unix://user:{SECRET}@/run/redis.sock", "unix:/run/redis.sock/0"),
        ({"address": f"redis://:{SECRET}@cache:6379/0", "socket_timeout": 5}, "cache:6379/0"),
        ({"host": "cache", "port": 6379, "password": SECRET}, "cache:6379/0"),
        ({"master_name": "mymaster", "sentinel_kwargs": {"password": SECRET}}, "sentinel:mymaster"),
        (("cache", 6379), "cache:6379/0"),
    ],
)
def test_a_host_is_described_by_where_it_is_never_by_its_credentials(host, where):
    assert parse_host(host).location() == where


@pytest.mark.parametrize("backend", [RedisChannelLayer, RedisPubSubChannelLayer])
def test_a_real_layer_on_a_unix_socket_with_a_password_keeps_it_out_of_the_description(backend):
    async def described() -> dict[str, str]:
        # the pub/sub layer resolves its attributes per event loop; neither connects here
        layer = backend(hosts=[f"unix://:{SECRET}@/run/redis.sock"], prefix="asgi")
        return identity(layer)

    ids = asyncio.run(described())
    assert SECRET not in " ".join(ids.values())
    assert "unix:/run/redis.sock" in ids[c.LAYER_DESC]
