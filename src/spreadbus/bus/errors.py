"""Which exceptions mean "Redis is away" (retry, reconnect) and which do not.

Not ``OSError`` as a whole: a full disk (ENOSPC), a permission or an I/O error is a local
problem, reported as such by the service that met it, never as a lost Redis connection.
"""

from __future__ import annotations

import errno
from typing import Final

import redis.exceptions

# redis-py's own errors, and the socket-level ones (ConnectionError, TimeoutError) it lets through
REDIS_ERRORS: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)

# errnos that mean the disk cannot take more for now: wait and retry, keep everything
DISK_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_problem(exc: OSError) -> str:
    """One line for a person: ``disk full (No space left on device)`` or the error itself."""
    what = "disk full" if exc.errno in DISK_FULL_ERRNOS else "disk error"
    detail = exc.strerror or str(exc)
    where = f" at {exc.filename}" if exc.filename else ""
    return f"{what} ({detail}){where}"
