"""The fields of every log line bridge writes: who decided what, for which request.

Theory of operation: a log line is a decision about a request. Every line bridge
writes names the middleware (or adapter) that wrote it, its decision, and the
request, in the message *and* as ``extra=`` attributes of the record, so the
default configurations (which print only the message) and a structured handler
(which reads the attributes) see the same values:

==================== ==========================================================
``bridge_middleware`` who wrote the line: ``"TrustedHost"``, ``"WsgiToAsgi"``...
``bridge_decision``   what it did: ``"refused"``, ``"rejected"``, ``"failed"``...
``bridge_method``     the request method (``"WEBSOCKET"`` for a handshake), or None
``bridge_path``       the request path, root path included, or None
``bridge_client``     the client's address (host only), or None
==================== ==========================================================

A middleware's own details go under its own prefix (RateLimit's
``ratelimit_*``), passed as ``more``. :func:`log_fields` is pure;
:class:`EventLog` is what call sites use, and only hands the record to
:mod:`logging`. Client-supplied text (the path) is escaped and cut to a bounded
length, so a line can neither be forged across lines nor grow without bound.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

__all__ = ("EventLog", "log_fields", "log_message", "request_parts")

#: Characters of a path a log line keeps (the rest is replaced by "...").
PATH_LIMIT: Final = 200


def _shown(text: str) -> str:
    """``text`` cut to :data:`PATH_LIMIT`, control characters escaped as ``repr`` does."""
    cut = text[:PATH_LIMIT]
    if not cut.isprintable():
        cut = repr(cut)[1:-1]
    return cut + ("..." if len(text) > PATH_LIMIT else "")


def _host(client: Any) -> str | None:
    if isinstance(client, (tuple, list)) and client and client[0]:
        return str(client[0])
    return str(client) if isinstance(client, str) and client else None


def request_parts(request: object) -> tuple[str | None, str | None, str | None]:
    """``(method, path, client host)`` of a WSGI environ, an ASGI scope or a request head.

    Anything else (``None`` for a line about no request) gives three Nones.
    """
    if isinstance(request, Mapping):
        if "REQUEST_METHOD" in request:  # a WSGI environ
            path = request.get("SCRIPT_NAME", "") + request.get("PATH_INFO", "")
            path = path.encode("latin-1", "replace").decode("utf-8", "replace")  # PEP 3333
            return request["REQUEST_METHOD"], _shown(path), request.get("REMOTE_ADDR") or None
        if "type" in request:  # an ASGI scope
            method = request.get("method") or str(request["type"]).upper()
            return method, _shown(request.get("path", "")), _host(request.get("client"))
        return None, None, None
    method = getattr(request, "method", None)
    if not isinstance(method, str):
        return None, None, None
    return method, _shown(getattr(request, "path", "")), _host(getattr(request, "client", None))


def log_fields(middleware: str, decision: str, request: object, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a log line (see the module docstring), with ``more`` added."""
    method, path, client = request_parts(request)
    return {
        "bridge_middleware": middleware,
        "bridge_decision": decision,
        "bridge_method": method,
        "bridge_path": path,
        "bridge_client": client,
        **more,
    }


def log_message(fields: Mapping[str, Any]) -> str:
    """The start of the message: ``"TrustedHost refused GET /x (client 10.0.0.1)"``."""
    who = f"{fields['bridge_middleware']} {fields['bridge_decision']}"
    if fields["bridge_method"] is None:
        return who
    client = fields["bridge_client"] or "unknown"
    return f"{who} {fields['bridge_method']} {fields['bridge_path']} (client {client})"


class EventLog:
    """A logger whose every line names the middleware, the decision and the request.

    ``log = EventLog(logging.getLogger("bridge.middleware.cors"), "CORS")``, then
    ``log.warning("refused", head, "preflight from Origin %s", origin)`` writes
    ``CORS refused OPTIONS /api (client 10.0.0.1): preflight from Origin ...``
    with :func:`log_fields` as ``extra=``. ``middleware=`` overrides the name for
    one line (the middleware core logs for whichever middleware it drives).
    """

    __slots__ = ("logger", "middleware")

    def __init__(self, logger: logging.Logger, middleware: str) -> None:
        self.logger = logger
        self.middleware = middleware

    def info(self, decision: str, request: object, detail: str = "", *args: Any, **kw: Any) -> None:
        """Routine: INFO (hidden by the default uvicorn, gunicorn and Django setups)."""
        self._emit(logging.INFO, decision, request, detail, args, **kw)

    def warning(
        self, decision: str, request: object, detail: str = "", *args: Any, **kw: Any
    ) -> None:
        """A refusal or bad input: WARNING (shown by every default setup)."""
        self._emit(logging.WARNING, decision, request, detail, args, **kw)

    def error(
        self, decision: str, request: object, detail: str = "", *args: Any, **kw: Any
    ) -> None:
        """A fault (the app's or a middleware's): ERROR."""
        self._emit(logging.ERROR, decision, request, detail, args, **kw)

    def log(
        self, level: int, decision: str, request: object, detail: str = "", *args: Any, **kw: Any
    ) -> None:
        """Log ``detail % args`` at ``level``, prefixed and tagged by :func:`log_fields`.

        ``request`` is a WSGI environ, an ASGI scope, a request head or None.
        Keywords: ``exc_info``, ``middleware`` (this line's name), and a
        middleware's own fields (e.g. ``ratelimit_rule=``).
        """
        self._emit(level, decision, request, detail, args, **kw)

    def _emit(
        self,
        level: int,
        decision: str,
        request: object,
        detail: str,
        args: tuple[Any, ...],
        *,
        exc_info: Any = None,
        middleware: str | None = None,
        **more: Any,
    ) -> None:
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        fields = log_fields(middleware or self.middleware, decision, request, **more)
        prefix = log_message(fields)
        if args:  # logging %-formats the message only when there are args
            prefix = prefix.replace("%", "%%")
        message = prefix + (": " + detail if detail else "")
        # stacklevel 3: the record names the line that called info/warning/error/log
        logger.log(level, message, *args, extra=fields, exc_info=exc_info, stacklevel=3)
