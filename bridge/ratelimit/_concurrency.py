"""``ConcurrencyLimit``: nginx's ``limit_conn`` on the middleware core.

The exchange takes a slot in ``request`` and gives it back in ``finish``,
which the drivers call exactly once on every path (completed, app error,
client disconnect, cancellation). A local store is called inline; a shared
one through effects, so the release of a Redis slot is a sync call under
WSGI and an awaited one under ASGI.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Generator
from typing import Any, Final

from bridge._http.errors import ErrorFormat, check_error_format
from bridge._http.logfields import EventLog
from bridge._http.paths import Exempt, exempt_matcher
from bridge.middleware import (
    Effect,
    Exchange,
    Forward,
    Interface,
    Middleware,
    Outcome,
    RequestHead,
    Respond,
    Response,
)
from bridge.ratelimit._keys import KeyFunc, client_address, safe_key
from bridge.ratelimit._memory import MemoryStore
from bridge.ratelimit._middleware import (
    WITH_WEBSOCKETS,
    check_store,
    log_level_option,
    websocket_option,
)
from bridge.ratelimit._store import Store, StoreCall

__all__ = ("ConcurrencyLimit",)

logger = logging.getLogger("bridge.ratelimit")
log: Final = EventLog(logger, "ConcurrencyLimit")

#: Slot tokens: unique per process (the pid changes across fork) and per machine.
_NODE: Final = uuid.uuid4().hex[:12]
_counter = itertools.count()


def _token() -> str:
    return f"{_NODE}:{os.getpid()}:{next(_counter)}"


class ConcurrencyLimit(Middleware):
    """Cap the requests in flight per key, like nginx ``limit_conn``.

    :param limit: requests per key running at once (required, >= 1).
    :param key: key function of the request head (default the client address;
        ``None`` from it means not limited).
    :param store: :class:`~bridge.MemoryStore` (default, per process) or
        :class:`~bridge.RedisStore` (shared; slots of a dead worker come back
        after the store's ``lease``).
    :param status: the rejection status (default 503, like nginx).
    :param retry_after: ``Retry-After`` seconds on a rejection (default 1).
    :param error_format: the rejection's body, ``"text"`` (default) or
        ``"problem+json"`` (RFC 9457).
    :param exempt: requests never limited: path patterns (``"/healthz"``
        covers ``/healthz/live``, relative to the mount point; ``"=/healthz"``
        is that path only) or a function of the request head returning True.
    :param name: names this limit's counters in the store (default ``"conn"``).
    :param log_level: the level of the one log line per rejection (default
        ``logging.WARNING``; ``None`` logs none). Its ``extra=`` fields are
        ``ratelimit_rule`` (the name), ``ratelimit_key``, ``ratelimit_client``,
        ``ratelimit_policy`` (``"<limit> in flight"``) and ``ratelimit_result``.
    :param websocket: also cap open websocket connections (ASGI; default
        False: they pass through). A connection holds its slot until it
        closes; a refused handshake gets the 503 itself where the server
        offers the websocket denial response extension, else it is closed
        before accept with code 1008 (the server answers 403).

    The slot is given back on every path: the response completed, the app
    raised, the client disconnected, the request was cancelled.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``exempt`` paths are prefixes relative to the mount point (see RateLimit).
    .. versionchanged:: 0.3
       Rejections are logged at WARNING with the key and ``extra=`` fields (were INFO);
       ``log_level``.
    .. versionadded:: 0.3
       ``websocket``.
    """

    websocket_denial_response = True

    def __init__(
        self,
        app: Any,
        limit: int,
        *,
        key: KeyFunc = client_address,
        store: Store | None = None,
        status: int = 503,
        retry_after: int = 1,
        error_format: ErrorFormat = "text",
        exempt: Exempt = None,
        name: str = "conn",
        log_level: int | None = logging.WARNING,
        websocket: bool = False,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive int (requests in flight), not {limit!r}")
        if not callable(key):
            raise ValueError(f"key must be a function of the request head, not {key!r}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {status!r}")
        if not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError(f"retry_after must be a non-negative int, not {retry_after!r}")
        self.limit = limit
        self.key = key
        self.store = MemoryStore() if store is None else check_store(store)
        self.rejection = Response.error(
            status,
            error_format=check_error_format(error_format),
            headers=((b"retry-after", str(retry_after).encode()),),
        )
        self.exempt = exempt_matcher(exempt, "ConcurrencyLimit: exempt")
        self.name = name
        self.prefix = f"{name}|conn|{limit}|"
        self.log_level = log_level_option(log_level, "ConcurrencyLimit")
        if websocket_option(websocket, "ConcurrencyLimit"):
            self.scope_types = WITH_WEBSOCKETS  # type: ignore[misc]  # this instance's choice

    def exchange(self, head: RequestHead, now: float) -> Exchange | None:
        if self.exempt is not None and self.exempt(head):
            return None
        raw_key = self.key(head)
        if raw_key is None:
            return None
        return _ConcurrencyExchange(head, now, self, safe_key(raw_key))

    def log_rejection(self, head: RequestHead, key: str) -> None:
        level = self.log_level
        if level is None or not logger.isEnabledFor(level):
            return
        client = head.client[0] if head.client else None
        log.log(
            level,
            "rejected",
            head,
            "limit %r (key %s, %d in flight)",
            self.name,
            key,
            self.limit,
            ratelimit_rule=self.name,
            ratelimit_key=key,
            ratelimit_client=client,
            ratelimit_policy=f"{self.limit} in flight",
            ratelimit_result="rejected",
        )


class _ConcurrencyExchange(Exchange):
    __slots__ = ("held", "key", "mw", "shown_key", "token")

    def __init__(self, head: RequestHead, now: float, mw: ConcurrencyLimit, key: str) -> None:
        super().__init__(head, now)
        self.mw = mw
        self.shown_key = key  # as stored, without the limit's prefix: what the log shows
        self.key = mw.prefix + key
        self.token = _token()
        self.held = False

    def request(self) -> Forward | Respond | Generator[Effect[Any], Any, Forward | Respond]:
        store = self.mw.store
        args = (self.key, self.mw.limit, self.token, self.now)
        if store.local:
            return self._decide(store.acquire(*args))
        return self._shared(store, args)

    def _shared(
        self, store: Store, args: tuple[str, int, str, float]
    ) -> Generator[Effect[Any], Any, Forward | Respond]:
        return self._decide((yield StoreCall(store.acquire, store.acquire_async, args)))

    def _decide(self, acquired: bool) -> Forward | Respond:
        self.held = acquired
        if acquired:
            return Forward(self.head)
        self.mw.log_rejection(self.head, self.shown_key)
        return Respond(self.mw.rejection)

    def finish(self, outcome: Outcome) -> Generator[Effect[Any], Any, None] | None:
        if not self.held:
            return None
        self.held = False
        store = self.mw.store
        if store.local:
            store.release(self.key, self.token)
            return None
        return self._release(store)

    def _release(self, store: Store) -> Generator[Effect[Any], Any, None]:
        yield StoreCall(store.release, store.release_async, (self.key, self.token))
