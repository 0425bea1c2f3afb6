"""``fcall``: a Redis Function call packed by hiredis, on a real server."""

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from spreadbus.bus.connect import fcall

LIBRARY = """#!lua name=spreadbus_test
redis.register_function('spreadbus_test_echo', function(keys, args)
  return {#keys, #args, keys[#keys], args[#args]}
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
async def test_an_error_reply_is_raised_and_the_connection_stays_usable(
    aredis: aioredis.Redis,
) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match="refused: no"):
        await fcall(aredis, "spreadbus_test_fail", [], ["no"])
    assert await fcall(aredis, "spreadbus_test_echo", ["a"], ["b"]) == [1, 1, b"a", b"b"]
    assert await aredis.ping()
