"""RequestId: one id per request, on the response, for the app and in every log record.

The id lives in a :class:`contextvars.ContextVar` set when the request is
forwarded and restored when the exchange finishes. Under WSGI the app runs in
the thread (and context) that calls the middleware; under ASGI it runs in the
middleware's task, and tasks or threads it starts copy the context. So
:class:`RequestIdFilter` sees the id in every record emitted while the request
runs, and no other request ever sees it: nothing process-wide holds it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, Final

from bridge._http.logfields import EventLog
from bridge.middleware._core.base import Interface, Middleware, spellings
from bridge.middleware._core.exchange import Exchange, Forward, Outcome
from bridge.middleware._core.heads import RequestHead, ResponseHead, set_header, with_header
from bridge.middleware._core.validate import header_name
from bridge.middleware._host_rules import quoted_for_log

__all__ = ("REQUEST_ID_KEY", "RequestId", "RequestIdFilter", "current_request_id")

logger: Final = logging.getLogger("bridge.middleware.request_id")
log: Final = EventLog(logger, "RequestId")

#: ``values`` key (environ / scope key) holding the request's id.
REQUEST_ID_KEY: Final = "bridge.request_id"
#: Printable ASCII, no spaces at either end, at most 200 characters.
_VALID: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")

_current: ContextVar[str | None] = ContextVar("bridge.request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request running in this context (thread or task), or None."""
    return _current.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id``: the running request's id, or ``default`` outside one.

    Attach it to a handler (``handler.addFilter(RequestIdFilter())``) and use
    ``%(request_id)s`` in the format. It never drops a record.
    """

    def __init__(self, name: str = "", default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        found = _current.get()
        record.request_id = self.default if found is None else found
        return True


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex``, without building a UUID object (a third of its cost): 16
    random bytes with the version (4, byte 6) and variant (0b10, byte 8) bits that
    RFC 9562 requires of a version 4 UUID."""
    data = bytearray(os.urandom(16))
    data[6] = (data[6] & 0x0F) | 0x40
    data[8] = (data[8] & 0x3F) | 0x80
    return data.hex()


class RequestId(Middleware):
    """Give every request an id: on the response header, for the app, and in log records.

    Options:

    * ``header``: the request and response header (default ``"X-Request-ID"``).
    * ``trust_incoming``: False (default) always makes a new id; True keeps
      the client's (or the proxy's) header when it is printable ASCII of at
      most 200 characters, and replaces it (one warning) otherwise.
    * ``generator``: makes ids (default: a random UUID4 as 32 hex digits, as ``uuid.uuid4().hex``).

    The app reads the id as ``environ["bridge.request_id"]`` (WSGI) or
    ``scope["bridge.request_id"]`` (ASGI), and in the request header
    ``header`` (the client's own value never reaches the app unless trusted).
    Log records get it through :class:`RequestIdFilter`, or code calls
    :func:`current_request_id`. The response carries it in ``header``,
    replacing any value the app set.

    .. versionadded:: 0.1
    """

    scope_types = frozenset({"http", "websocket"})

    def __init__(
        self,
        app: Any,
        *,
        header: str = "X-Request-ID",
        trust_incoming: bool = False,
        generator: Callable[[], str] = _uuid4_hex,
        interface: Interface | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app, interface=interface, clock=clock)
        self.header = header_name(header, "header")
        self.header_spellings = spellings((header,))  # as configured, under WSGI
        if not isinstance(trust_incoming, bool):
            raise TypeError(f"trust_incoming must be True or False, not {trust_incoming!r}")
        if not callable(generator):
            raise TypeError(f"generator must be a function returning a str, not {generator!r}")
        self.trust_incoming = trust_incoming
        self.generator = generator

    def exchange(self, head: RequestHead, now: float) -> _RequestIdExchange:
        return _RequestIdExchange(head, now, self)

    def new_id(self) -> str:
        made = self.generator()
        if self.generator is _uuid4_hex:
            return made  # 32 hex digits: valid by construction
        if not isinstance(made, str) or not _VALID.fullmatch(made):
            raise ValueError(
                f"RequestId generator returned {made!r}: give printable ASCII of 1-200 characters"
            )
        return made

    def request_id(self, head: RequestHead) -> str:
        """The id of the request with ``head``: the trusted incoming one, or a new one."""
        return self.trusted_id(head) or self.new_id()

    def trusted_id(self, head: RequestHead) -> str | None:
        """The incoming id when it is trusted and valid, else None."""
        if self.trust_incoming:
            incoming = head.header(self.header)
            if incoming is not None:
                text = incoming.decode("latin-1")
                if _VALID.fullmatch(text):
                    return text
                shown = quoted_for_log(text)
                log.warning("replaced", head, "invalid incoming %s %s", self.header.decode(), shown)
        return None


class _RequestIdExchange(Exchange):
    __slots__ = ("mw", "request_id", "token")
    response_on_failure = True  # the id of a failed request is the one worth reporting

    def __init__(self, head: RequestHead, now: float, mw: RequestId) -> None:
        self.head = head
        self.now = now
        self.mw = mw
        self.request_id = b""  # the id as sent, once request() made it
        self.token: Token[str | None] | None = None

    def request(self) -> Forward:
        mw = self.mw
        head = self.head
        rid = mw.trusted_id(head) if mw.trust_incoming else None
        if rid is None:  # a new id: the app's request header becomes it (one copy of the head)
            rid = mw.generator() if mw.generator is _uuid4_hex else mw.new_id()
            value = rid.encode("ascii")
            known = head.values  # usually none: a new mapping of one key is quicker to make
            values = MappingProxyType(
                {**known, REQUEST_ID_KEY: rid} if known else {REQUEST_ID_KEY: rid}
            )
            head = with_header(head, mw.header, value, values)
        else:
            value = rid.encode("ascii")
            head = head.with_value(REQUEST_ID_KEY, rid)
        self.request_id = value
        self.token = _current.set(rid)
        return Forward(head)

    def response(self, head: ResponseHead) -> ResponseHead:
        return head.replace(headers=set_header(head.headers, self.mw.header, self.request_id))

    def finish(self, outcome: Outcome) -> None:
        token = self.token
        if token is not None:
            self.token = None
            try:
                _current.reset(token)
            except ValueError:  # finished in another context: the request's own ends with it
                pass
