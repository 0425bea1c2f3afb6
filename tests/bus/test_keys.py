import pytest

from spreadbus.bus import keys


def test_symbol_keys_share_one_hash_tag() -> None:
    symbol_keys = [
        keys.tick_stream("BTCUSDT"),
        keys.ghost_stream("BTCUSDT"),
        keys.price_series("BTCUSDT"),
        *(keys.candle_series("BTCUSDT", f) for f in keys.CANDLE_FIELDS),
        *(keys.candle_source_series("BTCUSDT", f) for f in keys.CANDLE_FIELDS),
        keys.analytics_state("BTCUSDT"),
        keys.feed_state("BTCUSDT"),
    ]
    assert all("{BTCUSDT}" in k for k in symbol_keys)
    assert len(set(symbol_keys)) == len(symbol_keys) - 1  # close's source is the price series


def test_contract_names() -> None:
    assert keys.tick_stream("BTCUSDT") == "stream:ticks:{BTCUSDT}"
    assert keys.ghost_stream("BTCUSDT") == "stream:ticks:{BTCUSDT}:GHOST"
    assert keys.price_series("ETHUSDT") == "ts:price:{ETHUSDT}"
    assert keys.candle_series("ETHUSDT", "high") == "ts:ohlc:{ETHUSDT}:1m:high"
    assert keys.analytics_series("ETHUSDT/BTCUSDT", "beta") == "ts:analytics:{ETHUSDT/BTCUSDT}:beta"
    assert keys.analytics_state("ETHUSDT/BTCUSDT") == "state:analytics:{ETHUSDT/BTCUSDT}"
    assert keys.feed_state("ETHUSDT") == "state:feed:{ETHUSDT}"
    assert keys.health("gateway") == "state:health:{gateway}"
    assert keys.candle_source_series("ETHUSDT", "close") == keys.price_series("ETHUSDT")


@pytest.mark.parametrize("ghost", [False, True])
def test_stream_symbol_inverts_builders(ghost: bool) -> None:
    key = keys.ghost_stream("SOLUSDT") if ghost else keys.tick_stream("SOLUSDT")
    assert keys.stream_symbol(key) == ("SOLUSDT", ghost)
    assert keys.stream_symbol(key.encode()) == ("SOLUSDT", ghost)


def test_cluster_slots_match_for_one_symbol() -> None:
    from redis.crc import key_slot

    slots = {
        key_slot(k.encode())
        for k in (
            keys.tick_stream("BTCUSDT"),
            keys.ghost_stream("BTCUSDT"),
            keys.price_series("BTCUSDT"),
            keys.candle_series("BTCUSDT", "open"),
            keys.candle_source_series("BTCUSDT", "volume"),
        )
    }
    assert len(slots) == 1
