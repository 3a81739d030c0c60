"""What kind of application an object looks like, told cheaply at construction.

The adapters use this to refuse the wrong kind of app when they are built
(``WsgiToAsgi(fastapi_app)``, ``AsgiToWsgi(flask_app)``, ``WsgiToAsgi(Flask)``)
instead of answering 500 to every request. The rule only looks at the object
and its signature, never calls it:

* an ASGI 3 app is a coroutine function, or has an ``async def __call__``
  (asgiref's ``markcoroutinefunction`` counts), or takes exactly three
  required positional arguments ``(scope, receive, send)``;
* a WSGI app takes exactly two required positional arguments
  ``(environ, start_response)`` and is not a coroutine function;
* anything else (a signature that cannot be read, ``*args``) is "unknown" and
  accepted by both adapters: a false refusal would be worse than a late error.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, TypeAlias

from asgiref.sync import iscoroutinefunction

__all__ = ("AppShape", "app_shape", "is_coroutine_app", "wrong_app_message")

AppShape: TypeAlias = Literal["asgi", "wsgi", "class", "unknown"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def app_shape(app: Any) -> AppShape:
    """``"class"`` for a class, else ``"asgi"``, ``"wsgi"`` or ``"unknown"`` (see the module)."""
    if inspect.isclass(app):
        return "class"
    if is_coroutine_app(app):
        return "asgi"
    required = _required_positional(app)
    if required == 3:
        return "asgi"
    if required == 2:
        return "wsgi"
    return "unknown"


def is_coroutine_app(app: Any) -> bool:
    """Whether ``app``, or its ``__call__``, is a coroutine function (asgiref's
    ``markcoroutinefunction`` counts): the sure sign of an ASGI 3 app."""
    call = getattr(app, "__call__", None)  # noqa: B004 - the method itself is inspected
    return iscoroutinefunction(app) or iscoroutinefunction(call)


def _required_positional(app: Any) -> int | None:
    """How many positional arguments a call of ``app`` needs, or None when it takes ``*args``
    or its signature cannot be read (builtins, some C extensions)."""
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return None
    required = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in _POSITIONAL and parameter.default is inspect.Parameter.empty:
            required += 1
    return required


def wrong_app_message(adapter: Literal["WsgiToAsgi", "AsgiToWsgi"], app: Any) -> str | None:
    """Why ``adapter`` cannot wrap ``app`` and what to use instead, or None when it can."""
    shape = app_shape(app)
    if adapter == "WsgiToAsgi":
        if shape == "class":
            return (
                f"WsgiToAsgi needs a WSGI application, got the class {app.__qualname__}: "
                f"pass an instance of it (e.g. {app.__qualname__}(__name__) for Flask)"
            )
        if shape == "asgi":
            return (
                f"WsgiToAsgi wraps a WSGI application, but {app!r} is an ASGI application: "
                "serve it with the ASGI server directly (no adapter), or use "
                "bridge.AsgiToWsgi(app) to run it under a WSGI server"
            )
        return None
    if shape == "wsgi" or (shape == "class" and _wsgi_class(app)):
        return (
            f"AsgiToWsgi wraps an ASGI application, but {app!r} is a WSGI application "
            "(it takes environ and start_response): serve it with the WSGI server directly "
            "(no adapter), or use bridge.WsgiToAsgi(app) to run it under an ASGI server"
        )
    return None


def _wsgi_class(cls: type) -> bool:
    """A class whose instances are WSGI apps (``Flask``): a plain ``__call__`` taking
    ``(self, environ, start_response)``. An ASGI 2 class's instance has
    ``async def __call__(self, receive, send)``, so it is not mistaken for one."""
    call = next((k.__dict__["__call__"] for k in cls.__mro__ if "__call__" in k.__dict__), None)
    if call is None or iscoroutinefunction(call):
        return False
    return _required_positional(call) == 3
