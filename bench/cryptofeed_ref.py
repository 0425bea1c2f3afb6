"""cryptofeed as the firehose reference of ``bench gateway``: the same frames, the same Redis.

cryptofeed (PyPI) is a benchmark reference, not a dependency of spreadbus: it is installed
once into a virtual environment of its own, ``.venv/.bench-cryptofeed`` (inside the ignored
``.venv``), and run as a separate process. Only its endpoints change: ``BinanceFutures``'s
WebSocket endpoint is the local server's ``/market`` route (where trade streams are served, as
on Binance since 2026-04) and its REST endpoint the local server (``/fapi/v1/exchangeInfo`` at
start); cryptofeed accepts only ``wss://`` addresses, so its check is relaxed to let the
plain ``ws://`` of the local server through (spreadbus reads the same server without TLS
too). Its ``TRADES`` channel subscribes to ``<symbol>@aggTrade`` on a combined stream; its
frame parsing and its Redis backend (``TradeStream``: one ``XADD`` of a trade's fields per
trade, pipelined per batch) are untouched. The Redis URL is given as its ``host`` argument
(``:<password>@127.0.0.1``), the only way that backend takes a password.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

VENV: Final = Path(__file__).resolve().parents[1] / ".venv" / ".bench-cryptofeed"
PACKAGES: Final = ("cryptofeed==2.4.1", "redis>=5")
STREAM_PREFIX: Final = "trades-BINANCE_FUTURES-"  # TradeStream's keys: <prefix><BASE>-USDT-PERP

RUNNER: Final = """
import sys
from cryptofeed import FeedHandler
from cryptofeed import connection
from cryptofeed.backends.redis import TradeStream
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import TRADES
from cryptofeed.exchanges import BinanceFutures

ws_url, rest_url, host, port, symbols = sys.argv[1:6]
checked_init = connection.WSAsyncConn.__init__

def plain_ws_init(self, address, *args, **kwargs):
    # cryptofeed insists on wss://; the local server, like spreadbus's path here, has no TLS
    checked_init(self, "wss://" + address.removeprefix("ws://"), *args, **kwargs)
    self.address = address

connection.WSAsyncConn.__init__ = plain_ws_init
BinanceFutures.websocket_endpoints = [
    WebsocketEndpoint(ws_url + "/market", options={"compression": None})
]
BinanceFutures.rest_endpoints = [
    RestEndpoint(rest_url, routes=Routes("/fapi/v1/exchangeInfo"))
]
handler = FeedHandler(config={"log": {"disabled": True}})
handler.add_feed(BinanceFutures(
    symbols=[s.removesuffix("USDT") + "-USDT-PERP" for s in symbols.split(",")],
    channels=[TRADES],
    callbacks={TRADES: TradeStream(host=host, port=int(port))},
))
handler.run()
"""


def python() -> Path | str:
    """The reference environment's interpreter, installing it on first use; or, if it cannot
    be had, the reason (the benchmark reports it and goes on without the reference)."""
    interpreter = VENV / "bin" / "python"
    if interpreter.exists():
        return interpreter
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(interpreter), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             *PACKAGES],
            check=True, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        return f"installing {' '.join(PACKAGES)} failed: {(exc.stderr or '')[-500:]}".strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"installing {' '.join(PACKAGES)} failed: {exc}"
    return interpreter


def start(
    interpreter: Path, ws_url: str, rest_url: str, port: int, password: str, symbols: list[str]
) -> subprocess.Popen[bytes]:
    """cryptofeed subscribed to every symbol's trades, writing to Redis on ``port``."""
    return subprocess.Popen(
        [str(interpreter), "-c", RUNNER, ws_url, rest_url, f":{password}@127.0.0.1", str(port),
         ",".join(symbols)],
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stream_key(symbol: str) -> str:
    return f"{STREAM_PREFIX}{symbol.removesuffix('USDT')}-USDT-PERP"


async def stopped_with(process: subprocess.Popen[bytes]) -> str:
    """Why a reference process ended (its last stderr lines)."""
    await asyncio.to_thread(process.wait)
    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
    return f"cryptofeed exited {process.returncode}: {err[-800:]}"
