"""A storage that waits out its database: a PostgreSQL restart, a dropped connection, a briefly locked SQLite
file. Every storage call is retried with a bounded exponential backoff, said in the log; anything else (a bad
value, a finished trial) is raised at once. The lab's users share one server for weeks of sweeps."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat

log = logging.getLogger(__name__)

ATTEMPTS = 40  # with the waits below: about 5 minutes before a sweep gives up on its database
FIRST_WAIT, MAX_WAIT = 0.5, 10.0


def is_transient(e: BaseException) -> bool:
    """True when e (or what caused it) says the database could not be reached or was busy, not that the call
    was wrong: SQLAlchemy's OperationalError/InterfaceError/DisconnectionError (Optuna wraps them in
    StorageInternalError)."""
    from sqlalchemy import exc

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)):
            return True
        if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
            return True
        e = e.__cause__ or e.__context__
    return False


def _reason(e: BaseException) -> str:
    """The database driver's own words (first line), found under Optuna's and SQLAlchemy's wrappers."""
    while getattr(e, "orig", None) is None and (e.__cause__ or e.__context__) is not None:
        e = e.__cause__ or e.__context__
    text = str(getattr(e, "orig", None) or e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:160]


LAST_RECOVERY = [0.0]  # time.time() when a call last succeeded after an outage, in this process


def retry(call: Callable[[], Any], what: str, attempts: int = ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> Any:
    """call(), retried while it fails transiently (at most `attempts` times); the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            out = call()
            if attempt > 1:
                LAST_RECOVERY[0] = time.time()
                log.warning("storage reachable again (%s)", what)
            return out
        except Exception as e:
            if not is_transient(e) or attempt == attempts:
                raise
            wait = min(MAX_WAIT, FIRST_WAIT * 2 ** (attempt - 1))
            reason = _reason(e)
            log.warning("storage unreachable during %s (%s); retry %d/%d in %.1f s", what, reason, attempt,
                        attempts - 1, wait)
            sleep(wait)


def seconds_since_recovery() -> float:
    """Seconds since this process last got through to its database after an outage (inf: never had one).
    While other workers may not yet have recorded a heartbeat since, their trials only look stale."""
    return time.time() - LAST_RECOVERY[0] if LAST_RECOVERY[0] else float("inf")


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """Wraps an RDBStorage; every public storage and heartbeat method is retried by `retry`."""

    def __init__(self, inner: RDBStorage, attempts: int = ATTEMPTS):
        self.inner, self.attempts = inner, attempts

    @property
    def engine(self) -> Any:  # the runner's budget lock takes its own connection
        return self.inner.engine

    @property
    def url(self) -> str:
        return self.inner.url


def _forward(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return retry(lambda: getattr(self.inner, name)(*args, **kwargs), name, self.attempts)

    method.__name__ = name
    return method


for _name in sorted({n for base in (BaseStorage, BaseHeartbeat) for n, v in vars(base).items()
                     if callable(v) and not n.startswith("__")}):
    setattr(RetryingStorage, _name, _forward(_name))
RetryingStorage.__abstractmethods__ = frozenset()
