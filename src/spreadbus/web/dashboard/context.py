"""What every page's callbacks share: the settings, the Redis client, and the outage rule.

Callbacks are ``async`` and run on uvicorn's event loop (Dash's FastAPI backend awaits them),
so a page never blocks the API, and they use the API's own client through :mod:`web.read`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from dash.exceptions import PreventUpdate

from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.web.deps import RedisHandle
from spreadbus.web.errors import REDIS_DOWN

P = ParamSpec("P")
LOG = EventLog("web")
R = TypeVar("R")


@dataclass(frozen=True)
class Context:
    settings: Settings
    handle: RedisHandle

    def client(self) -> Any:
        """The web process's Redis client (made on first use; raises while Redis is away)."""
        return self.handle.get()


def live_callback(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """A live callback that leaves the page as it is while Redis is away: the header says
    so (its own callback catches the outage), and the next tick after Redis returns updates
    everything again. Without this, each second would log a failed callback in the browser."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except REDIS_DOWN:
            raise PreventUpdate from None
        except PreventUpdate:
            raise
        except Exception as exc:
            # Dash answers a bare 500; the traceback belongs in the log, where it is read.
            LOG.error("dashboard callback failed", callback=func.__name__, error=repr(exc),
                      exc_info=exc)  # fmt: skip
            raise

    return wrapper
