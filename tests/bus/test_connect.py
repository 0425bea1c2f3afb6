"""``fcall`` and ``pipelined``: commands packed by hiredis, on a real server and cluster."""

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from spreadbus.bus.connect import PackedArgs, connect, fcall, pipelined
from spreadbus.config import Settings

LIBRARY = """#!lua name=spreadbus_test
redis.register_function('spreadbus_test_echo', function(keys, args)
  return {#keys, #args, keys[#keys], args[#args]}
end)
redis.register_function('spreadbus_test_all', function(keys, args)
  return {keys, args}
end)
redis.register_function('spreadbus_test_fail', function(keys, args)
  return redis.error_reply('refused: ' .. args[1])
end)
"""


@pytest.fixture
async def library(aredis: aioredis.Redis) -> None:
    await aredis.execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY)


@pytest.mark.usefixtures("library")
async def test_a_large_call_arrives_whole_with_every_value_as_text(aredis: aioredis.Redis) -> None:
    names = [f"stream:ticks:{{S{i:03d}USDT}}" for i in range(350)]
    values: list[object] = ["x" * 300, 42, 1795314919491.0571, b"raw"] * 1000
    reply = await fcall(aredis, "spreadbus_test_echo", names, values)
    assert reply == [350, 4000, names[-1].encode(), b"raw"]
    tail = await fcall(aredis, "spreadbus_test_echo", ["k"], [1795314919491.0571])
    assert float(tail[3]) == 1795314919491.0571  # floats go over by their exact repr


@pytest.mark.usefixtures("library")
async def test_keys_packed_before_arrive_as_the_same_keys_in_order(aredis: aioredis.Redis) -> None:
    """Keys packed once per symbol and joined per call (as the gateway's writer does) reach
    the function exactly as plain keys do, whatever their text; so do the arguments after."""
    symbols = ["BTCUSDT", "ÉTH USDT", "x" * 500, ""]
    per_symbol = {s: [f"stream:ticks:{{{s}}}", f"ts:{{{s}}}:price", s] for s in symbols}
    values: list[object] = [7, "t", 1795314919491.0571, b"\x00\r\n", ""]
    packed = PackedArgs.join([PackedArgs.of(per_symbol[s]) for s in reversed(symbols)])
    names = [key for s in reversed(symbols) for key in per_symbol[s]]
    keys_got, args_got = await fcall(aredis, "spreadbus_test_all", packed, values)
    assert keys_got == [key.encode() for key in names]
    assert args_got == [b"7", b"t", b"1795314919491.0571", b"\x00\r\n", b""]
    assert [keys_got, args_got] == await fcall(aredis, "spreadbus_test_all", names, values)
    assert await fcall(aredis, "spreadbus_test_all", PackedArgs.of([]), ["a"]) == [[], [b"a"]]


@pytest.mark.usefixtures("library")
async def test_an_error_reply_is_raised_and_the_connection_stays_usable(
    aredis: aioredis.Redis,
) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match="refused: no"):
        await fcall(aredis, "spreadbus_test_fail", [], ["no"])
    assert await fcall(aredis, "spreadbus_test_echo", ["a"], ["b"]) == [1, 1, b"a", b"b"]
    assert await aredis.ping()


async def test_pipelined_writes_answer_in_order_with_an_error_in_its_place(
    aredis: aioredis.Redis,
) -> None:
    """Each command's raw reply in order; a refused one is its error, the others still run,
    and the connection reads on cleanly afterwards."""
    await aredis.set("p:string", "not a hash")
    replies = await pipelined(
        aredis,
        [
            ("HSET", "p:hash", "price", 101.25, "n", 3, "side", "buy"),
            ("HSET", "p:string", "field", 1),  # WRONGTYPE
            ("INCRBY", "p:counter", 5),
        ],
    )
    assert replies[0] == 3 and replies[2] == 5
    assert isinstance(replies[1], redis.exceptions.ResponseError)
    assert "WRONGTYPE" in str(replies[1])
    assert await aredis.hgetall("p:hash") == {b"price": b"101.25", b"n": b"3", b"side": b"buy"}
    assert await pipelined(aredis, [("INCRBY", "p:counter", 1)]) == [6]


async def test_pipelined_on_a_cluster_routes_each_command_to_its_node(
    redis_cluster_url: str,
) -> None:
    """Keys in different slots, one call: every command reaches the node that owns its key."""
    client = connect(Settings(redis_url=redis_cluster_url))
    assert isinstance(client, RedisCluster)
    try:
        names = [f"p:{{S{i}}}" for i in range(20)]  # spread over the cluster's slots
        replies = await pipelined(client, [("HSET", name, "i", i) for i, name in enumerate(names)])
        assert replies == [1] * 20
        assert [await client.hget(name, "i") for name in names] == [
            str(i).encode() for i in range(20)
        ]
    finally:
        await client.aclose()
