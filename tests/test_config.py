from pathlib import Path

import pytest

from spreadbus.cli import main
from spreadbus.config import Settings, SettingsError, load_settings, parse_duration, parse_pair


def test_defaults_are_safe() -> None:
    settings = load_settings()
    assert settings.web_host == "127.0.0.1"
    assert settings.source == "auto"
    assert settings.redis_url is None
    assert settings.data_dir == Path("data")
    assert settings.symbols[:2] == ("ETHUSDT", "BTCUSDT")


def test_flags_override_environment_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPREADBUS_SOURCE", "sim")
    monkeypatch.setenv("SPREADBUS_PAIRS", "solusdt/ethusdt, ETHUSDT/BTCUSDT")
    from_env = load_settings()
    assert from_env.source == "sim"
    assert from_env.pairs == ("SOLUSDT/ETHUSDT", "ETHUSDT/BTCUSDT")
    from_flag = load_settings(source="binance")
    assert from_flag.source == "binance"
    assert from_flag.pairs == from_env.pairs


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("SPREADBUS_SOURCE", "kraken", "source"),
        ("SPREADBUS_PAIRS", "ETHUSDT", "pairs"),
        ("SPREADBUS_PAIRS", "ETHUSDT/ETHUSDT", "pairs"),
        ("SPREADBUS_WEB_PORT", "70000", "web_port"),
        ("SPREADBUS_WEB_PORT", "eighty", "web_port"),
        ("SPREADBUS_ARCHIVE_INTERVAL", "soon", "archive_interval"),
        ("SPREADBUS_REDIS_URL", "http://x", "redis_url"),
        ("SPREADBUS_PAIR", "ETHUSDT/BTCUSDT", "SPREADBUS_PAIR"),  # a typo is not ignored
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    value: str,
    named: str,
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()
    assert main(["gateway"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "Traceback" not in err


def test_bad_flag_value_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--port", "0"]) == 2
    assert "--web-port" in capsys.readouterr().err


def test_parse_helpers() -> None:
    assert parse_pair(" ethusdt/btcusdt ") == ("ETHUSDT", "BTCUSDT")
    assert parse_duration("10m") == 600
    assert parse_duration("10s") == 10
    assert parse_duration(30) == 30
    assert parse_duration("250ms") == pytest.approx(0.25)
    with pytest.raises(ValueError, match="positive"):
        parse_duration("0s")


def test_child_environment_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(source="sim", pairs=("SOLUSDT/ETHUSDT",), web_port=9000)
    for name, value in settings.child_environment().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings
